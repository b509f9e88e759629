"""OUT/summary.md (the tables of `sma.benchmark.stats`) and the plots of the means and the differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sma.benchmark.field import field_tables
from sma.benchmark.stats import paired_differences, summarise, tuned, untuned
from sma.evaluation import BY_KEY, HEADLINE, SUMMARY

TRADE_OFF = ("texture_leakage", "colour_leakage", "appearance_accuracy")  # what SMA may buy with motion (issue 41)


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
    text += field_tables(records)
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
    """OUT/summary.md (the tables) and, with `plots`, OUT/summary.png (the means with their intervals), where runs
    with and without SMA pair up OUT/differences.png (each variant minus no SMA, with its interval), and
    OUT/trade-off.png and OUT/trade-off-differences.png (motion against leakage and appearance, a point per variant:
    the means, and the paired differences against no SMA)."""
    from sma.video.atomic import atomic_output

    if not records:
        return
    with atomic_output(Path(out) / "summary.md", overwrite=True) as temporary:
        temporary.write_text(summary_text(records, name))
    if not plots:
        return
    rows = summarise(records)
    plot(rows, Path(out) / "summary.png")
    plot_trade_off(rows, Path(out) / "trade-off.png")
    if differences := paired_differences(records):
        plot(differences, Path(out) / "differences.png")
        plot_trade_off(differences, Path(out) / "trade-off-differences.png", differences=True)


def _pyplot():
    """matplotlib's pyplot drawing off-screen (a benchmark runs without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    """The figure as a png at `path`, written atomically, then closed."""
    from sma.video.atomic import atomic_output

    with atomic_output(path, overwrite=True) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    _pyplot().close(figure)


def plot(rows: list[dict], path: Path) -> None:
    shown = [(metric.key, metric.title) for metric in SUMMARY if any(row[metric.key] for row in rows)]
    columns = min(4, len(shown))
    lines = -(-len(shown) // columns)
    figure, axes = _pyplot().subplots(lines, columns, figsize=(3.2 * columns, 3.4 * lines), squeeze=False)
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
    _save(figure, path)


def plot_trade_off(rows: list[dict], path: Path, differences: bool = False) -> None:
    """A panel per method and trade-off metric: the headline motion score (x) against leakage or appearance (y), one
    point per row (variant) with both 95% intervals, so a setting that buys appearance with motion shows where it
    sits. `rows` are `summarise`'s means or, with `differences`, `paired_differences`' (the origin is no SMA)."""
    methods = list(dict.fromkeys(row["method"] for row in rows))
    measured = [key for key in TRADE_OFF if any(row[key] for row in rows) and any(row[HEADLINE] for row in rows)]
    if not measured:
        return
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    figure, axes = _pyplot().subplots(
        len(methods), len(measured), figsize=(3.6 * len(measured), 3.2 * len(methods)), squeeze=False
    )
    for line, method in zip(axes, methods, strict=True):
        for axis, key in zip(line, measured, strict=True):
            for row in (row for row in rows if row["method"] == method and row[HEADLINE] and row[key]):
                (x, x_low, x_high), (y, y_low, y_high) = row[HEADLINE], row[key]
                axis.errorbar(
                    x,
                    y,
                    xerr=[[x - x_low], [x_high - x]],
                    yerr=[[y - y_low], [y_high - y]],
                    fmt="o",
                    capsize=3,
                    color=f"C{variants.index(row['variant']) % 10}",
                    label=row["variant"],
                )
            axis.set_xlabel(BY_KEY[HEADLINE].title + BY_KEY[HEADLINE].arrow, fontsize=8)
            axis.set_ylabel(BY_KEY[key].title + BY_KEY[key].arrow, fontsize=8)
            if differences:
                axis.axhline(0.0, color="black", linewidth=0.5)
                axis.axvline(0.0, color="black", linewidth=0.5)
            axis.set_title(method, fontsize=9)
            axis.legend(fontsize=6)
    figure.tight_layout()
    _save(figure, path)
