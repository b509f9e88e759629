"""Wall time and peak accelerator memory of the phases of a run (train, invert, sample, decode)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class Phases:
    """Seconds, steps and peak GPU memory per named phase, summed over its repeats."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, float]] = {}

    @contextmanager
    def __call__(self, name: str, steps: int = 0) -> Iterator[None]:
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with torch.profiler.record_function(f"phase: {name}"):  # a row of its own in a profile (gpu_smoke --profile)
            yield
        if cuda:
            torch.cuda.synchronize()
        record = self.records.setdefault(name, {"seconds": 0.0, "steps": 0, "calls": 0})
        record["seconds"] += time.perf_counter() - start
        record["steps"] += steps
        record["calls"] += 1
        if cuda:
            peak = torch.cuda.max_memory_allocated() / 2**30
            record["peak_memory_gib"] = max(record.get("peak_memory_gib", 0.0), peak)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per phase: seconds, calls, steps and seconds per step (when it has steps), peak GiB on a GPU."""
        summary = {}
        for name, record in self.records.items():
            entry = {key: round(value, 4) if isinstance(value, float) else value for key, value in record.items()}
            if record["steps"]:
                entry["seconds_per_step"] = round(record["seconds"] / record["steps"], 4)
            summary[name] = entry
        return summary
