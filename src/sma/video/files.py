"""Paths of videos and frame files, apart from the readers so that checking paths loads no decoder."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sma.video.errors import VideoNotFoundError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def natural_key(path: Path) -> list[int | str]:
    """Sort key that compares runs of digits as numbers (frame_2 < frame_10)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def existing(path: str | os.PathLike) -> Path:
    """`path`, which must exist."""
    path = Path(path)
    if not path.exists():
        raise VideoNotFoundError(f"{path} does not exist")
    return path
