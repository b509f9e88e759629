"""Progress of a run's phases for whoever watches it, and a way to ask it to stop.

The loops (training, inversion, sampling, DMT's guidance) show a tqdm bar on the terminal (`bar`: written to a
file or pipe, it is a line at a time) and report each step to the watcher of the current thread, if any (`watch`):
the web page draws its progress bars and loss curves from these reports, and asks for a stop through the same watcher.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from tqdm import autonotebook, std
from tqdm.auto import tqdm

from sma.errors import SmaError

Item = TypeVar("Item")
INTERVAL = 30.0  # seconds: a bar written to a file or pipe adds a line at most this often
LINE = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def is_terminal(stream) -> bool:
    """Whether `stream` is a terminal (a file, a pipe or a stream without `isatty` is not)."""
    return getattr(stream, "isatty", lambda: False)()


def bar(**options) -> tqdm:
    """A tqdm bar (tqdm's options). Drawn in place on a terminal or in a notebook; to a file or pipe (`make demo >
    log`, CI) it writes a line when it starts, one at most every `INTERVAL` seconds and one when it ends, where tqdm
    would write a carriage-return frame at each redraw (megabytes in a long run's log)."""
    stream = options.pop("file", None) or sys.stderr
    if autonotebook.tqdm is not std.tqdm or is_terminal(stream):  # a notebook, a terminal
        return tqdm(file=stream, **options)
    options |= {"mininterval": INTERVAL, "maxinterval": INTERVAL, "leave": True, "bar_format": LINE}
    return std.tqdm(file=_Lines(stream), **options)


class _Lines:
    """The file a bar writes to a log through: each new count of the bar once (its time aside), as a whole line."""

    def __init__(self, stream) -> None:
        self.stream, self.last = stream, ""

    def write(self, text: str) -> None:
        for line in map(str.strip, re.split(r"[\r\n]", text)):
            if line and line.split(" [")[0] != self.last:
                self.last = line.split(" [")[0]
                self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


@dataclass(frozen=True)
class Step:
    """One finished step of a phase (train, invert, sample, dmt); `values`: the step's loss terms, if any."""

    phase: str
    done: int
    total: int
    values: dict[str, float] = field(default_factory=dict)


class RunStopped(SmaError):
    """A stop was asked for while generating: the run ended between two steps."""


@dataclass
class Watcher:
    on_step: Callable[[Step], None]
    stop: threading.Event = field(default_factory=threading.Event)


_watcher: ContextVar[Watcher | None] = ContextVar("sma_watcher", default=None)


@contextmanager
def watch(on_step: Callable[[Step], None], stop: threading.Event | None = None) -> Iterator[Watcher]:
    """Send every step of the runs started in this block (in this thread) to `on_step`; setting `stop` asks
    them to end at the next step boundary (training saves a checkpoint first)."""
    watcher = Watcher(on_step, stop or threading.Event())
    token = _watcher.set(watcher)
    try:
        yield watcher
    finally:
        _watcher.reset(token)


def stop_requested() -> bool:
    watcher = _watcher.get()
    return watcher is not None and watcher.stop.is_set()


def report(phase: str, done: int, total: int, values: dict[str, float] | None = None) -> None:
    watcher = _watcher.get()
    if watcher is not None:
        watcher.on_step(Step(phase, done, total, dict(values or {})))


def track(items: Iterable[Item], phase: str, total: int, show: bool = True) -> Iterator[Item]:
    """The items, with a transient terminal bar (`bar`) and a report after each; a requested stop ends it between
    items."""
    with bar(total=total, desc=phase, disable=not show, leave=False) as shown:
        for done, item in enumerate(items):
            if stop_requested():
                raise RunStopped(f"stopped during {phase}, at step {done} of {total}")
            yield item
            shown.update(1)
            report(phase, done + 1, total)
