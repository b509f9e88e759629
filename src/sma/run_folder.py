"""Run-folder rules: one writer at a time, never lose a run, never leave half of one; where each output goes.

A run folder is a folder holding `config.yaml`. A new run is set up beside its folder
(`.NAME.new`) and renamed into place once its starting files are complete; a run that
replaces another (`overwrite`) is built there entirely and swapped in only after it
succeeded. A sibling lock file (`.NAME.lock`, held with `flock`, so the lock of a killed
process is released by the kernel) keeps a second writer out.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sma.errors import SmaError
from sma.video.atomic import can_write_in, replace_folder

CONFIG_FILE = "config.yaml"  # what makes a folder a run folder
RUN_FILE = "run.json"  # the reference's path and hash, for an honest resume
ADAPTER_DIR = "adapter"  # the trained adapter, written when training has finished
UNTUNED_DIR = "untuned"  # the untuned model's sample of each target, NN-target.mp4, beside videos/
# the settings a resumed run may change; any other difference from the stored run is refused
RESUMABLE = {
    "train.steps": "more or fewer steps, not below the latest checkpoint",
    "train.checkpoint_every": "how often checkpoints are written",
    "targets": "the prompts generated after training",
    "image": "the picture every target starts from (training conditions on the reference's own first frame)",
    "target_images": "the picture of each target",
    "last_image": "the picture every target ends on",
    "show1.stages": "how far Show-1's cascade generates",
    "generate.untuned": "whether the untuned model's samples are written too",
    "train.compile": "whether training compiles the repeated blocks (the same numbers, another speed)",
    "generate.compile": "whether generation compiles the repeated blocks",
    "train.memory_budget_gb": "the memory budget that picks the layers recomputed (the same gradients)",
}


class RunLocked(SmaError):
    """Another process is writing the run folder."""


def is_run_folder(path: Path, marker: str = CONFIG_FILE) -> bool:
    """Whether `path` holds a run: the file every run of its kind writes first (`marker`)."""
    return (Path(path) / marker).is_file()


def holds_work(path: Path) -> bool:
    """Whether a run folder holds what training made (a checkpoint or the adapter): never to be removed unasked."""
    return any((path / "checkpoints").glob("step-*")) or (path / ADAPTER_DIR).is_dir()


def _occupied(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def check_run_dir(out: Path, overwrite: bool, resume: bool, marker: str = CONFIG_FILE) -> Path:
    """Refuse to touch an existing folder unless asked, and never one that is not a run (holds no `marker`),
    before any slow work."""
    out = Path(out)
    if overwrite and resume:
        raise SmaError("set either `resume` (continue the run) or `overwrite` (replace it), not both")
    if out.exists() and not out.is_dir():
        raise SmaError(f"{out} is a file, not a run folder")
    if _occupied(out) and not is_run_folder(out, marker):
        raise SmaError(f"{out} is not empty and holds no run ({marker}): choose another output folder")
    if _occupied(out) and not (overwrite or resume):
        raise SmaError(f"{out} already holds a run: set `resume` to continue it or `overwrite` to replace it")
    return out


def create_run_dir(out: Path, overwrite: bool, resume: bool) -> Path:
    """The folder of a run that is not an sma run folder (the demo's), emptied when `overwrite`."""
    if overwrite and not resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def file_hash(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, in name order)."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if file.is_file():
            digest.update(str(file.relative_to(path)).encode() if file != path else b"")
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


class RunLock:
    """An exclusive `flock` on a file that names its holder (pid, host, start time)."""

    def __init__(self, path: Path, what: Path) -> None:
        self.path, self.what, self._fd = Path(path), what, None

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise SmaError(f"cannot write in {self.path.parent}: {error.strerror}") from error
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = os.read(fd, 4096).decode(errors="replace")
                os.close(fd)
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise SmaError(f"cannot lock {self.path}: {error.strerror}") from error
                raise RunLocked(f"{self.what} is being written by another run ({_describe(holder)})") from None
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:  # not a file its last holder just removed
                    break
            os.close(fd)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # gone, or its folder turned read-only: the flock ends all the same
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def lock_of(out: Path) -> RunLock:
    """The lock of the folder `out` (an absolute path), beside it: every writer of videos into `out` takes it."""
    return RunLock(out.parent / f".{out.name}.lock", out)


@contextlib.contextmanager
def one_writer(out: Path):
    """Create the folder `out` and hold its lock (the one `RunFolder` takes) while writing into it: a second writer,
    `generate` or a run, is refused, naming the holder, before any work."""
    out = Path(os.path.abspath(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SmaError(f"cannot create {out}: {error.strerror}") from error
    lock = lock_of(out)
    lock.acquire()
    try:
        yield out
    finally:
        lock.release()


def _describe(holder: str) -> str:
    try:
        about = json.loads(holder)
        return f"pid {about['pid']} on {about['host']}, since {about['since']}"
    except (ValueError, KeyError, TypeError):
        return "a process that is starting"


class RunFolder:
    """The folder a run writes, from its checks to its last file; use as a context manager.

    `path` is where the run writes: the run folder itself, or its replacement being built
    beside it (`overwrite`). On failure the replacement is removed, and so is a new run
    folder with no checkpoint to resume from, so that a corrected rerun is not blocked.
    `main` is False in the other processes of a data-parallel run: they neither lock nor write.
    """

    def __init__(self, out: Path, *, overwrite: bool, resume: bool, main: bool = True) -> None:
        self.out = Path(os.path.abspath(out))  # `.` has a name and a parent this way
        self.overwrite, self.resume, self.main = overwrite, resume, main
        self.staging = self.out.parent / f".{self.out.name}.new"
        self._old = self.out.parent / f".{self.out.name}.old"  # the replaced run, for the moment of the swap
        self.path = self.staging if overwrite else self.out
        self._lock = lock_of(self.out)
        self._created = False

    @property
    def resuming(self) -> bool:
        """`resume` of a folder that holds a run (resuming nothing starts a new run)."""
        return self.resume and is_run_folder(self.out)

    def __enter__(self) -> RunFolder:
        if not self.main:
            return self
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SmaError(f"cannot create {self.out.parent}: {error.strerror}") from error
        self._lock.acquire()
        try:
            self._recover()
            check_run_dir(self.out, self.overwrite, self.resume)  # under the lock: no one else writes it now
            if self.out.exists() and not can_write_in(self.out):
                raise SmaError(f"cannot write in {self.out}: permission denied")
        except BaseException:
            self._lock.release()
            raise
        return self

    def _recover(self) -> None:
        """Undo what a killed writer left: a half-built replacement, or a swap stopped midway."""
        if self._old.exists() and not self.out.exists():
            os.replace(self._old, self.out)
        for leftover in (self.staging, self._old):
            shutil.rmtree(leftover, ignore_errors=True)

    def begin(self, write: Callable[[Path], Any]) -> None:
        """Write the run's starting files (`write(folder)`), all at once: the folder has all of them or none."""
        if not self.main or self.resuming:
            return
        try:
            self.staging.mkdir()
            write(self.staging)
            if not self.overwrite:
                if self.out.exists():
                    self.out.rmdir()  # empty, checked under the lock
                os.replace(self.staging, self.out)
                self._created = True
        except PermissionError as error:
            raise SmaError(f"cannot write the run folder {self.out}: {error.strerror}") from error

    def __exit__(self, kind, error, _traceback) -> None:
        if not self.main:
            return
        try:
            if kind is None and self.overwrite:
                self._swap()
            elif kind is not None:
                shutil.rmtree(self.staging, ignore_errors=True)
                if self._created and not holds_work(self.out):
                    shutil.rmtree(self.out, ignore_errors=True)  # nothing to resume: let a corrected rerun start
        finally:
            self._lock.release()

    def _swap(self) -> None:
        if self.out.exists():
            replace_folder(self.staging, self.out, retired=self._old)
        else:
            os.replace(self.staging, self.out)
        self.path = self.out


def resume_differences(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings (dotted keys, `in backticks`) that differ between two flattened configs, other than RESUMABLE."""
    keys = sorted((stored.keys() | new.keys()) - RESUMABLE.keys())
    return [f"`{key}` ({stored.get(key)!r} -> {new.get(key)!r})" for key in keys if stored.get(key) != new.get(key)]


def resumable_settings() -> str:
    return ", ".join(f"`{key}`" for key in RESUMABLE)


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe form of a prompt."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "video"


def video_path(out: Path, index: int, target: str, stage: str = "base", folder: str = "videos") -> Path:
    """Where the video of the `index`-th target goes: out/videos/NN-target.mp4; a later stage of Show-1's
    cascade next to it, out/videos/NN-target.STAGE.mp4; the untuned model's in out/untuned/ (`folder`: UNTUNED_DIR)."""
    suffix = "" if stage == "base" else f".{stage}"
    return Path(out) / folder / f"{index:02d}-{slug(target)}{suffix}.mp4"
