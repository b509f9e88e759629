"""Score a finished benchmark's outputs again with today's metrics, without running any cell again.

    python benchmarks/rescore.py runs/hard-a runs/hard-b --out benchmarks/hard-rescored --name hard

Each PART is a benchmark folder (its suite.yaml, cells/ and results.jsonl, as `sma benchmark` or one lane of
`lanes.py` writes it). Every recorded cell's videos are scored as `sma benchmark` scores them
(`sma.benchmark.evaluate_cell`), keeping each record's cell, method, variant, seed, fingerprint and seconds;
OUT/results.jsonl and its summary are written as `summarise.py` writes them. For a metric that changed after a
benchmark ran (the robust motion fidelity of session 10, say).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sma.benchmark import (
    METRICS,
    cell_config,
    evaluate_cell,
    read_results,
    read_suite,
    reference_clip,
    write_summary,
)
from sma.embedded import embedded_model
from sma.errors import SmaError
from sma.video.atomic import atomic_output

SCORES = {key for key, _, _ in METRICS} | {"video"}


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
    parser.add_argument("parts", type=Path, nargs="+", help="benchmark folders (suite.yaml, cells/, results.jsonl)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="rescored", help="the title of the summary")
    arguments = parser.parse_args()
    try:
        records = [record for part in arguments.parts for record in rescore(part)]
    except SmaError as error:
        sys.exit(f"error: {error}")
    arguments.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(arguments.out / "results.jsonl", overwrite=True) as temporary:
        temporary.write_text("".join(json.dumps(record) + "\n" for record in records))
    write_summary(arguments.out, records, arguments.name)
    print(f"{len(records)} records scored again: {arguments.out / 'summary.md'}")


if __name__ == "__main__":
    main()
