"""Running a suite: every cell not yet in OUT/results.jsonl, its records appended as it finishes, the resolved
settings beside them (settings.yaml), the summary rewritten after each cell; and parts run apart merged."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from sma.benchmark.cells import cell_config, evaluate_cell, fingerprint, model_digest, reference_clip
from sma.benchmark.suite import Cell, Suite
from sma.benchmark.summary import write_summary
from sma.errors import SmaError
from sma.evaluation import current_keys

RESULTS_FILE = "results.jsonl"
SETTINGS_FILE = "settings.yaml"


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
) -> list[dict[str, Any]]:
    """Run every cell not yet in OUT/results.jsonl, score its outputs, and rewrite the summary after each.

    `model` replaces the suite's (default: the embedded model of the suite's world). `transfer` is `sma.runs.transfer`
    unless given. Returns every record.
    """
    from tqdm.auto import tqdm

    from sma.embedded import embedded_model

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SmaError(f"{out} is a file, not a benchmark folder")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise SmaError(f"{out} already holds a benchmark: set `resume` to continue it or `overwrite` to replace it")
    model = model or suite.model or embedded_model(suite.world)
    cells = suite.cells()
    configs = {cell.id: cell_config(suite, cell, model) for cell in cells}  # every config checked before any work
    if overwrite and not resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(suite.path, out / "suite.yaml")
    write_settings(out, suite, model)
    records = read_results(out)
    done = _finished(records, cells, configs)
    if transfer is None:
        from sma.runs import transfer
    bar = tqdm(
        total=len(cells),
        initial=len(done),
        desc=f"benchmark {suite.name}",
        unit="cell",
        disable=not progress,
        file=sys.stderr,
    )
    for cell in (cell for cell in cells if cell.id not in done):
        bar.set_postfix_str(cell.id)
        new = run_cell(cell, configs[cell.id], out, transfer)
        append_results(out, new)
        records += new
        write_summary(out, records, suite.name)
        bar.update()
    bar.close()
    write_summary(out, records, suite.name)
    return records


def run_cell(cell: Cell, config, out: Path, transfer: Callable) -> list[dict[str, Any]]:
    """One transfer into OUT/cells/<cell>/ (its messages in OUT/logs/<cell>.log) and a record per target."""
    started = time.perf_counter()
    reference_path, clip = reference_clip(cell, config, out)
    with _cell_log(out / "logs" / f"{cell.id}.log"):
        run_dir = transfer(config, reference_path, out / "cells" / cell.id, overwrite=True, tune=cell.variant.tune)
    common = {
        "cell": cell.id,
        "reference": cell.reference.name,
        "method": cell.method.name,
        "variant": cell.variant.name,
        "sma": cell.variant.uses_sma,
        "tuned": cell.variant.tune,
        "seed": cell.seed,
        "fingerprint": fingerprint(config, cell),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return [{**common, **record} for record in evaluate_cell(cell, config, Path(run_dir), clip)]


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


@contextlib.contextmanager
def _cell_log(path: Path) -> Iterator[None]:
    """The cell's own messages (training and sampling bars, warnings, what it is generating) go to its log, so
    the suite's bar is the one on the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as log, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        yield


def merge_parts(parts: list[Path], out: Path, name: str, read: Callable = read_results) -> list[dict]:
    """One benchmark out of parts run apart (in parallel lanes, or over several sessions): OUT/results.jsonl and its
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
