"""Paired differences between two methods of one benchmark: the same reference, target and seed.

    python benchmarks/versus.py OUT flowmotion-sma/nosma dmt/nosma vmc/nosma vmc/untuned

The first METHOD/VARIANT is compared with each of the others: a markdown table of its mean minus theirs per
metric, with 95% bootstrap intervals over the pairs (`sma.benchmark.paired_differences` on the chosen
records). A summary's own paired differences stay within one method (a variant minus the method without SMA).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sma.benchmark import paired_differences, read_results, table


def arm(record: dict, chosen: str) -> bool:
    return f"{record['method']}/{record['variant']}" == chosen


def versus(records: list[dict], treated: str, control: str) -> list[dict]:
    """`treated` minus `control` (both METHOD/VARIANT) on the pairs both have, labelled as one row."""
    chosen = [
        record | {"method": "paired", "variant": name, "arm": name}
        for name in (treated, control)
        for record in records
        if arm(record, name)
    ]
    return paired_differences(
        chosen, treated=lambda record: record["arm"] == treated, control=lambda record: record["arm"] == control
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a benchmark's folder (its results.jsonl)")
    parser.add_argument("treated", help="METHOD/VARIANT, e.g. flowmotion-sma/nosma")
    parser.add_argument("controls", nargs="+", help="METHOD/VARIANT to subtract, each in turn")
    arguments = parser.parse_args()
    records = read_results(arguments.out)
    names = {f"{record['method']}/{record['variant']}" for record in records}
    missing = [name for name in (arguments.treated, *arguments.controls) if name not in names]
    if missing:
        sys.exit(f"error: {arguments.out} has no {', '.join(missing)} (it has {', '.join(sorted(names))})")
    rows = [row for control in arguments.controls for row in versus(records, arguments.treated, control)]
    print(table(rows))


if __name__ == "__main__":
    main()
