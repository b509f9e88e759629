"""Atomic outputs: write to a temporary path in the same folder, then rename over the target.

A reader never sees a half-written file, and a failure leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from sma.video.errors import OutputExistsError


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an existing output unless `overwrite`; fail before any work is done."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; set `overwrite` to replace it")
    return path


def can_write_in(folder: str | os.PathLike) -> bool:
    """Whether a file can be created in `folder`, by creating one: permission bits say nothing for root or
    on a read-only file system."""
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path (same folder, same suffix) that replaces `path` when the block succeeds.

    The temporary path may become a file or a folder; a folder replaces a folder.
    """
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.stem)}.{'?' * 8}.tmp{glob.escape(path.suffix)}"):
        _remove(stale)  # what a killed writer of the same output left
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield temporary
        if temporary.is_dir() and path.exists():
            retired = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(path, retired)
            os.replace(temporary, path)
            _remove(retired)
        else:
            os.replace(temporary, path)
    finally:
        _remove(temporary)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
