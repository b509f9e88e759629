"""Run-folder rules: never touch an existing run unless asked; where each output goes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from sma.errors import SmaError


def check_run_dir(out: Path, overwrite: bool, resume: bool) -> Path:
    """Refuse to touch an existing run unless asked, before any slow work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SmaError(f"{out} is a file, not a run folder")
    if out.exists() and any(out.iterdir()) and not (overwrite or resume):
        raise SmaError(f"{out} already holds a run: set `resume` to continue it or `overwrite` to replace it")
    return out


def create_run_dir(out: Path, overwrite: bool, resume: bool) -> Path:
    if overwrite and not resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe form of a prompt."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "video"


def video_path(out: Path, index: int, target: str) -> Path:
    """Where the video of the `index`-th target goes: out/videos/NN-target.mp4."""
    return Path(out) / "videos" / f"{index:02d}-{slug(target)}.mp4"
