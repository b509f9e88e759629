"""Where a suite's cells run: one after another in this process (`InProcess`, the default), or each a Ray task on
a local Ray or a cluster (`RayExecutor`, `pip install 'sma[ray]'`). Both yield an `Outcome` per cell as it
finishes; the driver (`runner.run_suite`) alone writes results, so an executor never touches results.jsonl."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sma.benchmark.cells import reference_clip, run_cell
from sma.benchmark.suite import Cell
from sma.errors import SmaError

EMBEDDED_GPU_SHARE = 0.05  # an embedded-model cell: 20 to a GPU, as 20 processes shared one H100 for the hard suite


@dataclass(frozen=True)
class Outcome:
    """A finished cell: its records, or the one-line error it failed with (and no records)."""

    cell: Cell
    records: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def attempt(cell: Cell, config, out: Path, transfer: Callable) -> Outcome:
    """Run one cell; an exception becomes its Outcome's one-line error (the traceback goes to the cell's log), so
    the other cells go on (an interrupt still stops everything)."""
    try:
        return Outcome(cell, run_cell(cell, config, Path(out), transfer))
    except Exception as error:  # any failure of a cell is recorded, not raised
        log = Path(out) / "logs" / f"{cell.id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as file:
            traceback.print_exc(file=file)
        return Outcome(cell, error=one_line(error))


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class InProcess:
    """Cells one after another in this process: the default, and what `sma benchmark` always did."""

    running = 0  # cells under way as an outcome is handed over: the next one, if any

    def run(self, jobs: list[tuple[Cell, Any]], out: Path, transfer: Callable) -> Iterator[Outcome]:
        for index, (cell, config) in enumerate(jobs):
            outcome = attempt(cell, config, out, transfer)
            self.running = int(index + 1 < len(jobs))
            yield outcome


class RayExecutor:
    """Every cell a Ray task asking for `cpus_per_cell` CPUs and `gpus_per_cell` GPUs (default: one CPU; on a
    cluster with GPUs a whole GPU, or a 1/20 share for the small embedded models, none without). Ray starts
    locally unless `address` names a running cluster; OUT must then be a folder every node sees (a shared file
    system), since each task writes its cell there. Ray's worker processes outlive their tasks, so what a
    worker imported (torch, diffusers, sma) is paid for once per worker, not per cell."""

    def __init__(self, address: str | None = None, cpus_per_cell: float = 1.0, gpus_per_cell: float | None = None):
        _import_ray()  # missing Ray is said before any work
        self.address, self.cpus_per_cell, self.gpus_per_cell = address, cpus_per_cell, gpus_per_cell
        self.running = 0

    def run(self, jobs: list[tuple[Cell, Any]], out: Path, transfer: Callable) -> Iterator[Outcome]:
        out = Path(out).resolve()  # the workers do not start in this folder
        for cell, config in jobs:  # each reference written once here, not by cells racing for it
            reference_clip(cell, config, out)
        ray = _import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            _start_ray(ray, self.address)
        task = ray.remote(max_retries=0)(attempt)
        pending = {}
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            for cell, config in jobs:
                options = {"num_cpus": self.cpus_per_cell, "num_gpus": self._gpus(config, gpus)}
                pending[task.options(**options).remote(cell, config, out, transfer)] = cell
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                cell = pending.pop(finished[0])
                self.running = min(len(pending), _slots(ray, self.cpus_per_cell))
                yield _collect(ray, finished[0], cell)
        finally:
            for reference in pending:
                ray.cancel(reference, force=True)
            self.running = 0
            if started_here:
                ray.shutdown()

    def _gpus(self, config, available: float) -> float:
        if self.gpus_per_cell is not None:
            return self.gpus_per_cell
        if not available:
            return 0.0
        from sma.embedded import MODEL_DIRS

        embedded = {str(folder.resolve()) for folder in MODEL_DIRS.values()}
        return EMBEDDED_GPU_SHARE if str(Path(config.model).resolve()) in embedded else 1.0


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SmaError("the Ray executor needs Ray: pip install 'sma[ray]'") from None
    return ray


def _start_ray(ray, address: str | None) -> None:
    """A local Ray without its dashboard, or the cluster at `address`; Ray's own messages kept to warnings."""
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = "locally" if address is None else f"at {address}"
        raise SmaError(f"Ray did not start {where}: {one_line(error)}") from None


def _slots(ray, cpus_per_cell: float) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_cell, 1e-9)))


def _collect(ray, reference, cell: Cell) -> Outcome:
    """A task's Outcome; a worker that died under it (killed, out of memory) fails that cell alone."""
    try:
        return ray.get(reference)
    except ray.exceptions.RayError as error:
        return Outcome(cell, error=one_line(error))
