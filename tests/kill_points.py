"""kill -9 at a chosen call of a piece of work, run in a forked child (the fault-injection tests' machinery).

A profiler numbers the calls made in sma's code and in the modules that write files, notes which writer
(outermost) each happens in, and SIGKILLs the process at a chosen call. The work runs in a forked child, so
that every run starts from the same process state and a kill takes nothing else down.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import safetensors

import sma

WRITERS = {  # sma functions that write files
    "save_checkpoint",
    "save",
    "begin",
    "write_metrics",
    "_swap",
    "atomic_output",
    "save_tensors",
    "append_results",
}
WATCHED = tuple(
    str(Path(module.__file__).parent) if module.__file__.endswith("__init__.py") else module.__file__
    for module in (sma, safetensors, shutil, json, os, __import__("pathlib"), __import__("tempfile"))
)
SMA = str(Path(sma.__file__).parent)
HIT: dict[str, int] = {}  # kill points that struck and were recovered from, by scenario (conftest prints them)


class KillPoints:
    """A profiler that numbers the watched calls, notes the writer each happens in, and kills at `kill_at`."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at, self.count, self.writers = kill_at, 0, []
        self.writing: dict[str, list[int]] = {}

    def __call__(self, frame, event, _arg) -> None:
        code = frame.f_code
        if event not in ("call", "c_call", "return") or not code.co_filename.startswith(WATCHED):
            return
        writer = event != "c_call" and code.co_name in WRITERS and code.co_filename.startswith(SMA)
        if event == "return":
            if writer:
                self.writers.pop()
            return
        if writer:
            self.writers.append(code.co_name)
        if self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.writers:
            self.writing.setdefault(self.writers[0], []).append(self.count)
        self.count += 1

    def points(self, count: int, rng: random.Random) -> list[int]:
        """`count` distinct kill points: one inside each writer first (in turn), the rest anywhere from the first
        write to the last (before it nothing is on disk; after it, a few calls vary from run to run)."""
        chosen: list[int] = []
        writers = sorted(self.writing)
        for index in range(min(count, len(writers))):
            chosen.append(rng.choice(self.writing[writers[index]]))
        writing = [point for points in self.writing.values() for point in points]
        others = sorted(set(range(min(writing), max(writing) + 1)) - set(chosen))
        chosen += rng.sample(others, min(count - len(chosen), len(others)))
        return sorted(set(chosen))


def in_child(run: Callable[[TextIO], int]) -> tuple[int, str]:
    """`run(pipe)` in a forked child (every child starts from the same process state, and a kill takes nothing else
    down), its return value the child's exit code: the wait status and what it wrote to `pipe`."""
    sys.stdout.flush(), sys.stderr.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 1
        try:
            with os.fdopen(write, "w", buffering=1) as pipe:
                code = run(pipe)
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        written = pipe.read()
    return os.waitpid(pid, 0)[1], written


def killed(work: Callable[[], object], kill_at: int) -> bool:
    """Run `work` in a forked child that kills itself at call `kill_at`; True when it was killed."""

    def run(_pipe: TextIO) -> int:
        sys.setprofile(KillPoints(kill_at))
        work()
        return 0

    status, _ = in_child(run)
    assert not os.WIFEXITED(status) or os.WEXITSTATUS(status) == 0, "the child failed without being killed"
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def profiled(work: Callable[[], object]) -> KillPoints:
    """Run `work` to its end in a forked child (the state the killed children start from); its calls come back."""

    def run(pipe: TextIO) -> int:
        profile = KillPoints()
        sys.setprofile(profile)
        try:
            work()
        finally:
            sys.setprofile(None)
            json.dump({"count": profile.count, "writing": profile.writing}, pipe)
        return 0

    _, written = in_child(run)
    recorded = json.loads(written)
    profile = KillPoints()
    profile.count, profile.writing = recorded["count"], recorded["writing"]
    return profile


def budget(full: int, rotating: int) -> int:
    """How many kill points a scenario tries: all of `full` under `make faults` (SMA_FAULTS=all), else
    `rotating` of them, chosen by the day (SMA_FAULT_ROTATION) so that test runs cover them in turn."""
    return full if os.environ.get("SMA_FAULTS") == "all" else rotating


def rotation() -> int:
    """The seed of this run's kill points: SMA_FAULT_ROTATION, or the day number (printed for a rerun)."""
    return int(os.environ.get("SMA_FAULT_ROTATION", int(time.time() // 86400)))
