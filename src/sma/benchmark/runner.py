"""Running a suite: every cell not yet in OUT/results.jsonl handed to an executor (`executors`), its records
appended as it finishes, the cells that failed in OUT/failures.jsonl, the resolved settings beside them
(settings.yaml), the summary's tables rewritten after each cell, its plots at the end; and parts run apart merged."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from sma.benchmark.cells import cell_config, fingerprint, loaded_scorers, model_digest
from sma.benchmark.executors import InProcess, Outcome
from sma.benchmark.suite import Cell, Suite
from sma.benchmark.summary import write_summary
from sma.errors import SmaError
from sma.evaluation import current_keys

RESULTS_FILE = "results.jsonl"
SETTINGS_FILE = "settings.yaml"
FAILURES_FILE = "failures.jsonl"


def read_results(out: Path) -> list[dict[str, Any]]:
    """The records of results.jsonl (older files' keys read as today's); a last line cut short by an
    interruption is dropped from the file."""
    path = Path(out) / RESULTS_FILE
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines):
        try:
            records.append(current_keys(json.loads(line)))
        except json.JSONDecodeError:
            if number != len(lines) - 1:
                raise SmaError(f"{path} line {number + 1} is not JSON: the results file is damaged") from None
            path.write_text("".join(f"{kept}\n" for kept in lines[:-1]))
    return records


def append_results(out: Path, records: list[dict[str, Any]]) -> None:
    """One write per cell, flushed to disk, so a cell's records are all there or (at worst) cut off last."""
    with open(Path(out) / RESULTS_FILE, "a", encoding="utf-8") as file:
        file.write("".join(json.dumps(record) + "\n" for record in records))
        file.flush()
        os.fsync(file.fileno())


def run_suite(
    suite: Suite,
    out: Path,
    *,
    model: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    transfer: Callable | None = None,
    progress: bool = True,
    executor=None,
    fail_fast: bool = False,
) -> list[dict[str, Any]]:
    """Run every cell not yet in OUT/results.jsonl, score its outputs, and rewrite the summary's tables after each
    (its plots at the end).

    `model` replaces the suite's (default: the embedded model of the suite's world). `transfer` is `sma.runs.transfer`
    unless given. `executor` runs the cells (default `InProcess()`; `RayExecutor` fans them out). A cell that fails
    goes to OUT/failures.jsonl with its one-line error and the others go on; with `fail_fast` the first failure stops
    the run (an SmaError). Returns every record.
    """
    out = Path(out)
    if out.is_symlink():
        raise SmaError(f"{out} is a symbolic link (to {os.path.realpath(out)}): give the folder itself")
    if out.exists() and not out.is_dir():
        raise SmaError(f"{out} is a file, not a benchmark folder")
    occupied = out.exists() and any(out.iterdir())
    if occupied and not (out / SETTINGS_FILE).is_file():  # `overwrite` removes a benchmark, never another folder
        raise SmaError(f"{out} is not empty and holds no benchmark ({SETTINGS_FILE}): choose another output folder")
    if occupied and not (resume or overwrite):
        raise SmaError(f"{out} already holds a benchmark: set `resume` to continue it or `overwrite` to replace it")
    from sma.embedded import embedded_model

    model = model or suite.model or embedded_model(suite.world)
    cells = suite.cells()
    configs = {cell.id: cell_config(suite, cell, model) for cell in cells}  # every config checked before any work
    if suite.scoring.protocol:  # the scoring models found (or a one-line error) before any work too
        loaded_scorers(suite.scoring.clip, suite.scoring.dino)
    if overwrite and not resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if suite.path.is_file():
        shutil.copyfile(suite.path, out / "suite.yaml")
    else:  # an MTBench folder: the suite file that runs it again (`benchmarks/summarise.py --rescore` reads it)
        (out / "suite.yaml").write_text(yaml.safe_dump(_folder_suite(suite), sort_keys=False))
    write_settings(out, suite, model)
    records = read_results(out)
    done = _finished(records, cells, configs)
    (out / FAILURES_FILE).unlink(missing_ok=True)  # the failures of this run: earlier ones are run again
    if transfer is None:
        from sma.runs import transfer
    jobs = [(cell, configs[cell.id]) for cell in cells if cell.id not in done]
    executor = executor or InProcess()
    with _CellsBar(len(cells), len(done), suite.name, progress) as bar:
        outcomes = executor.run(jobs, out, transfer)
        with contextlib.closing(outcomes):
            for outcome in outcomes:
                if outcome.error is not None:
                    _record_failure(out, outcome, configs[outcome.cell.id])
                    bar.finish(executor.running, failed=True)
                    if fail_fast:
                        raise SmaError(f"cell {outcome.cell.id} failed: {outcome.error}")
                    continue
                append_results(out, outcome.records)
                records += outcome.records
                write_summary(out, records, suite.name, plots=False)  # the tables: the plots cost more than a cell
                bar.finish(executor.running, failed=False)
    write_summary(out, records, suite.name)
    return records


def _folder_suite(suite: Suite) -> dict[str, Any]:
    return {
        "name": suite.name,
        "mtbench": str(suite.path.resolve()),
        "seeds": list(suite.seeds),
        "methods": [method.name for method in suite.methods],
        "variants": [variant.name for variant in suite.variants],
        "overrides": suite.overrides,
        "clip": suite.scoring.clip,
        "dino": suite.scoring.dino,
    }


def read_failures(out: Path) -> list[dict[str, Any]]:
    """The cells that failed in the last run of OUT, each with its one-line error."""
    path = Path(out) / FAILURES_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _record_failure(out: Path, outcome: Outcome, config) -> None:
    cell = outcome.cell
    failure = {"cell": cell.id, "fingerprint": fingerprint(config, cell), "error": outcome.error}
    with open(out / FAILURES_FILE, "a", encoding="utf-8") as file:
        file.write(json.dumps(failure) + "\n")


class _CellsBar:
    """One bar over the suite's cells, with how many are running, finished and failed."""

    def __init__(self, total: int, finished: int, name: str, shown: bool):
        from sma.progress import bar

        self.finished, self.failed = finished, 0
        self.bar = bar(
            total=total, initial=finished, desc=f"benchmark {name}", unit="cell", disable=not shown, file=sys.stderr
        )

    def finish(self, running: int, failed: bool) -> None:
        self.failed += failed
        self.finished += not failed
        self.bar.set_postfix_str(f"running {running}, finished {self.finished}, failed {self.failed}", refresh=False)
        self.bar.update()

    def __enter__(self) -> _CellsBar:
        return self

    def __exit__(self, *exc_info) -> None:
        self.bar.close()


def write_settings(out: Path, suite: Suite, model: str) -> None:
    """OUT/settings.yaml: what the results were made with, beside them. The suite as run (its selected seeds,
    references, methods and variants; its overrides, and the `--set` settings over them), the model and the digest
    of its files (None for a Hub id), and the commit of sma that ran it ("unknown" outside git)."""
    from sma.video.atomic import atomic_output

    settings = {
        "suite": suite.name,
        "suite_file": str(suite.path),
        "sma_commit": sma_commit(),
        "model": model,
        "model_digest": model_digest(model),
        "world": suite.world,
        "seeds": list(suite.seeds),
        "references": [reference.name for reference in suite.references],
        "methods": {
            method.name: {
                "method": method.method,
                "recipe": None if method.recipe is None else str(method.recipe),
                "overrides": method.overrides,
                "variants": None if method.variants is None else list(method.variants),
            }
            for method in suite.methods
        },
        "variants": {v.name: {"sma": v.sma, "scale": v.scale, "tune": v.tune} for v in suite.variants},
        "overrides": suite.overrides,
        "set": suite.settings,
        "scoring": asdict(suite.scoring),
    }
    with atomic_output(out / SETTINGS_FILE, overwrite=True) as temporary:
        temporary.write_text(yaml.safe_dump(settings, sort_keys=False))


def sma_commit() -> str:
    """The git commit of the sma source that runs ("unknown" outside a git checkout, or without git)."""
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, check=False
        )
    except OSError:
        return "unknown"
    return found.stdout.strip() if found.returncode == 0 else "unknown"


def _finished(records: list[dict], cells: list[Cell], configs: dict) -> set[str]:
    """Cells with all their outputs recorded; one recorded with other settings is an error, not a silent redo."""
    recorded: dict[str, list[dict]] = {}
    for record in records:
        recorded.setdefault(record["cell"], []).append(record)
    done = set()
    for cell in cells:
        if cell.id not in recorded:
            continue
        if any(record["fingerprint"] != fingerprint(configs[cell.id], cell) for record in recorded[cell.id]):
            raise SmaError(
                f"cell {cell.id} was run with other settings or another model than the suite's now: "
                "write to another folder or set `overwrite`"
            )
        if len(recorded[cell.id]) == len(cell.reference.targets):
            done.add(cell.id)
    return done


def merge_parts(parts: list[Path], out: Path, name: str, read: Callable = read_results) -> list[dict]:
    """One benchmark out of parts run apart (on other machines, or over several sessions): OUT/results.jsonl and its
    summary, from each part's records as `read` gives them. A cell recorded in two parts is refused: which of them to
    keep is the user's call."""
    from sma.video.atomic import atomic_output

    records, seen = [], {}
    for part in parts:
        found = read(part)
        if not found:
            raise SmaError(f"{part} holds no results.jsonl records")
        for cell in dict.fromkeys(record["cell"] for record in found):
            if cell in seen:
                raise SmaError(f"cell {cell} is in both {seen[cell]} and {part}: keep one")
            seen[cell] = part
        records += found
    Path(out).mkdir(parents=True, exist_ok=True)
    with atomic_output(Path(out) / RESULTS_FILE, overwrite=True) as temporary:
        temporary.write_text("".join(f"{json.dumps(record)}\n" for record in records))
    write_summary(out, records, name)
    return records
