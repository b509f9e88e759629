"""OUT/summary.md (the tables of `sma.benchmark.stats`) and the plots of the means and the differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sma.benchmark.stats import paired_differences, summarise, tuned, untuned
from sma.evaluation import SUMMARY


def table(rows: list[dict]) -> str:
    """A markdown table of `summarise` or `paired_differences` rows, with the metrics any row measured."""
    shown = [metric for metric in SUMMARY if any(row[metric.key] for row in rows)]
    header = "| method | variant | n | " + " | ".join(f"{metric.title}{metric.arrow}" for metric in shown)
    lines = [header + " |", "|---|---|---|" + "---|" * len(shown)]
    for row in rows:
        cells = [
            "-" if row[metric.key] is None else "{:.3f} [{:.3f}, {:.3f}]".format(*row[metric.key]) for metric in shown
        ]
        lines.append(f"| {row['method']} | {row['variant']} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_text(records: list[dict], name: str) -> str:
    rows, differences = summarise(records), paired_differences(records)
    text = [
        f"# Benchmark {name}",
        "",
        f"{len(records)} outputs. Means with 95% bootstrap intervals over references x targets x seeds.",
        "",
        table(rows),
    ]
    if left_out := missing_columns(records):
        text += ["", "Columns left out: " + "; ".join(left_out) + "."]
    if differences:
        text += [
            "",
            "Paired differences against the same method without SMA (same reference, target and seed):",
            "",
            table(differences),
        ]
    tuning = paired_differences(records, tuned, untuned)
    if tuning:
        text += [
            "",
            "What the training adds: each variant minus the untuned backbone generating the same way (same "
            "reference, target and seed):",
            "",
            table(tuning),
        ]
    references = list(dict.fromkeys(record["reference"] for record in records))
    by_reference = [(name, paired_differences([r for r in records if r["reference"] == name])) for name in references]
    if len(references) > 1 and any(rows for _, rows in by_reference):
        text += ["", "Paired differences per reference (kind of motion):"]
        for name, rows in by_reference:
            text += ["", f"**{name}**", "", table(rows)] if rows else []
    return "\n".join(text) + "\n"


def missing_columns(records: list[dict]) -> list[str]:
    """Why each summary metric without a single value is left out of the tables: never measured (a metric of
    synthetic references, or CLIP's), or undefined in every output (motion fidelity where no moving point was
    tracked on one side)."""
    reasons = []
    for metric in SUMMARY:
        values = [record[metric.key] for record in records if metric.key in record]
        if not values:
            reasons.append(f"{metric.title}: not measured by these records")
        elif all(value is None or not np.isfinite(value) for value in values):
            reasons.append(
                f"{metric.title}: undefined in all {len(values)} outputs (no moving point tracked in the reference "
                "or the output; see the records' robust_reference_tracks and robust_generated_tracks)"
            )
    return reasons


def write_summary(out: Path, records: list[dict], name: str, plots: bool = True) -> None:
    """OUT/summary.md (the tables) and, with `plots`, OUT/summary.png (the means with their intervals) and, where runs
    with and without SMA pair up, OUT/differences.png (each variant minus no SMA, with its interval)."""
    from sma.video.atomic import atomic_output

    if not records:
        return
    with atomic_output(Path(out) / "summary.md", overwrite=True) as temporary:
        temporary.write_text(summary_text(records, name))
    if not plots:
        return
    plot(summarise(records), Path(out) / "summary.png")
    if differences := paired_differences(records):
        plot(differences, Path(out) / "differences.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sma.video.atomic import atomic_output

    shown = [(metric.key, metric.title) for metric in SUMMARY if any(row[metric.key] for row in rows)]
    columns = min(4, len(shown))
    lines = -(-len(shown) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 3.4 * lines), squeeze=False)
    for unused in axes.flat[len(shown) :]:
        unused.axis("off")
    labels = [f"{row['method']}\n{row['variant']}" for row in rows]
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    colours = [f"C{variants.index(row['variant']) % 10}" for row in rows]
    for axis, (key, title) in zip(axes.flat, shown, strict=False):
        values = [row[key] or (np.nan, np.nan, np.nan) for row in rows]
        means = np.array([value[0] for value in values])
        errors = np.array([[value[0] - value[1], value[2] - value[0]] for value in values]).T
        axis.bar(range(len(rows)), means, yerr=errors, capsize=3, color=colours)
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set_xticks(range(len(rows)), labels, fontsize=6, rotation=90)
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    with atomic_output(path, overwrite=True) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
