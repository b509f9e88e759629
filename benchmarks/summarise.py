"""One benchmark out of parts run apart (in parallel on a few cores, or over several sessions).

    python benchmarks/summarise.py runs/hard-a runs/hard-b --out benchmarks/hard --name hard

Reads each folder's results.jsonl, refuses a cell recorded in two parts, and writes
OUT/results.jsonl with OUT/summary.md and OUT/summary.png as `sma benchmark` writes them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sma.benchmark import RESULTS_FILE, read_results, write_summary
from sma.video.atomic import atomic_output


def merged(parts: list[Path]) -> list[dict]:
    records, seen = [], {}
    for part in parts:
        found = read_results(part)
        if not found:
            sys.exit(f"error: {part} holds no results.jsonl records")
        for cell in dict.fromkeys(record["cell"] for record in found):
            if cell in seen:
                sys.exit(f"error: cell {cell} is in both {seen[cell]} and {part}: keep one")
            seen[cell] = part
        records += found
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", type=Path, nargs="+", help="benchmark folders (each with a results.jsonl)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="merged", help="the title of the summary")
    arguments = parser.parse_args()
    records = merged(arguments.parts)
    arguments.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(arguments.out / RESULTS_FILE, overwrite=True) as temporary:
        temporary.write_text("".join(f"{json.dumps(record)}\n" for record in records))
    write_summary(arguments.out, records, arguments.name)
    print(f"{len(records)} records from {len(arguments.parts)} parts: {arguments.out / 'summary.md'}")


if __name__ == "__main__":
    main()
