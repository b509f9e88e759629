"""One benchmark out of parts run apart (in parallel on a few cores, or over several sessions).

    python benchmarks/summarise.py runs/hard-a runs/hard-b --out benchmarks/hard --name hard

Reads each folder's results.jsonl, refuses a cell recorded in two parts, and writes
OUT/results.jsonl with OUT/summary.md and OUT/summary.png as `sma benchmark` writes them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sma.benchmark import merge_parts
from sma.errors import SmaError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", type=Path, nargs="+", help="benchmark folders (each with a results.jsonl)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="merged", help="the title of the summary")
    arguments = parser.parse_args()
    try:
        records = merge_parts(arguments.parts, arguments.out, arguments.name)
    except SmaError as error:
        sys.exit(f"error: {error}")
    print(f"{len(records)} records from {len(arguments.parts)} parts: {arguments.out / 'summary.md'}")


if __name__ == "__main__":
    main()
