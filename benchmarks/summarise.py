"""One benchmark out of parts run apart (in parallel on a few cores, or over several sessions).

    python benchmarks/summarise.py runs/hard-a runs/hard-b --out results/hard --name hard [--rescore]

Reads each folder's results.jsonl, refuses a cell recorded in two parts, and writes
OUT/results.jsonl with OUT/summary.md and OUT/summary.png as `sma benchmark` writes them.
`--rescore` scores every recorded cell's videos again with today's metrics instead of reading the recorded
scores (`sma.benchmark.evaluate_cell`, as `sma benchmark` scores them; each record keeps its cell, method,
variant, seed, fingerprint and seconds): for a metric that changed after a benchmark ran. A part must then hold
what `sma benchmark` writes there: suite.yaml and cells/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sma.benchmark import (
    cell_config,
    evaluate_cell,
    merge_parts,
    read_results,
    read_suite,
    reference_clip,
)
from sma.embedded import embedded_model
from sma.errors import SmaError
from sma.evaluation import METRICS

SCORES = {metric.key for metric in METRICS} | {"video"}


def rescore(part: Path) -> list[dict]:
    """The records of one benchmark folder, every score computed again from its cells' videos."""
    suite = read_suite(part / "suite.yaml")
    cells = {cell.id: cell for cell in suite.cells()}
    model = suite.model or embedded_model(suite.world)
    records = read_results(part)
    rescored = []
    for cell_id in dict.fromkeys(record["cell"] for record in records):
        if cell_id not in cells:
            raise SmaError(f"{part}: cell {cell_id} is not in its suite.yaml")
        cell = cells[cell_id]
        config = cell_config(suite, cell, model)
        _, clip = reference_clip(cell, config, part)
        fresh = {record["target"]: record for record in evaluate_cell(cell, config, part / "cells" / cell_id, clip)}
        for record in (record for record in records if record["cell"] == cell_id):
            kept = {key: value for key, value in record.items() if key not in SCORES}
            rescored.append(kept | fresh[record["target"]])
    return rescored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", type=Path, nargs="+", help="benchmark folders (each with a results.jsonl)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="merged", help="the title of the summary")
    parser.add_argument("--rescore", action="store_true", help="score the cells' videos again with today's metrics")
    arguments = parser.parse_args()
    read = rescore if arguments.rescore else read_results
    try:
        records = merge_parts(arguments.parts, arguments.out, arguments.name, read)
    except SmaError as error:
        sys.exit(f"error: {error}")
    print(f"{len(records)} records from {len(arguments.parts)} parts: {arguments.out / 'summary.md'}")


if __name__ == "__main__":
    main()
