"""How many pairs a benchmark needs: the power calculation of docs/results.md, from a results.jsonl.

    python benchmarks/power.py runs/hard/results.jsonl [--variant sma]

For each method and metric: the mean without SMA, the sd of the paired differences (the variant minus no
SMA, same reference, target and seed), the paper-size effect (the method's relative gain in the SMA paper,
applied to the mean without SMA), the pairs a paired test needs for 80% power at two-sided alpha 0.05,
n = ((z_0.975 + z_0.80) sd / delta)^2, and the smallest difference the pairs at hand detect, 2.80 sd / sqrt(n).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from sma.benchmark import pair_up
from sma.evaluation import SUMMARY

Z = 1.959964 + 0.841621  # z_0.975 + z_0.80
PAPER_GAIN = {"vmc": 0.025, "motiondirector": 0.070}  # CLIP text alignment with / without SMA (DESIGN.md)


def power_rows(records: list[dict], variant: str) -> list[dict]:
    rows = []
    pairs = [(r, base) for r, base in pair_up(records) if r["variant"] == variant]
    for method in dict.fromkeys(r["method"] for r, _ in pairs):
        for metric in SUMMARY:
            key = metric.key
            chosen = [(r[key], base[key]) for r, base in pairs if r["method"] == method and r.get(key) is not None]
            chosen = [(value, baseline) for value, baseline in chosen if baseline is not None]
            if len(chosen) < 3:
                continue
            values, baselines = np.array(chosen).T
            spread = float(np.std(values - baselines, ddof=1))
            delta = PAPER_GAIN.get(method, 0.05) * abs(float(np.mean(baselines)))
            rows.append(
                {
                    "method": method,
                    "metric": f"{metric.title}{metric.arrow}",
                    "pairs": len(chosen),
                    "without": float(np.mean(baselines)),
                    "difference": float(np.mean(values - baselines)),
                    "sd": spread,
                    "delta": delta,
                    "needed": math.ceil((Z * spread / delta) ** 2) if delta > 0 else None,
                    "detectable": Z * spread / math.sqrt(len(chosen)),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--variant", default="sma", help="the variant with SMA compared to the one without")
    arguments = parser.parse_args()
    records = [json.loads(line) for line in arguments.results.read_text().splitlines() if line.strip()]
    print(
        "| method | metric | pairs | mean without SMA | mean difference | sd of differences "
        "| paper-size delta | pairs for 80% power | detectable now |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in power_rows(records, arguments.variant):
        print(
            f"| {row['method']} | {row['metric']} | {row['pairs']} | {row['without']:.3f} | {row['difference']:+.3f} "
            f"| {row['sd']:.3f} | {row['delta']:.3f} | {row['needed']} | {row['detectable']:.3f} |"
        )


if __name__ == "__main__":
    main()
