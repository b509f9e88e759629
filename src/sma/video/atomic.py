"""Atomic outputs: write to a temporary path in the same folder, then rename over the target.

A reader never sees a half-written file, and a failure leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from sma.video.errors import OutputExistsError

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>


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
            replace_folder(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        _remove(temporary)


def replace_folder(new: Path, target: Path, retired: Path | None = None) -> None:
    """Folder `new` in the place of folder `target`, which is whole at every moment (old or new, never absent):
    one atomic exchange where the system has it (Linux's renameat2), then the old one is removed from `new`'s
    place. Elsewhere two renames, with a moment where `target` is missing and its old self waits at `retired`."""
    if _exchange(new, target):
        _remove(new)
        return
    retired = retired or target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    os.replace(target, retired)
    os.replace(new, target)
    _remove(retired)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step; False where the system or the file system cannot."""
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
