"""Means with 95% bootstrap intervals per method and variant, and paired differences (the same method, reference,
target and seed with and without SMA, or trained and untuned)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sma.evaluation import SUMMARY


def bootstrap_interval(values: list[float], rng: np.random.Generator, resamples: int = 2000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean."""
    values = np.asarray(values, np.float64)
    means = rng.choice(values, (resamples, len(values))).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _statistics(values: list[float], rng: np.random.Generator) -> tuple[float, float, float] | None:
    finite = [value for value in values if value is not None and np.isfinite(value)]
    return (float(np.mean(finite)), *bootstrap_interval(finite, rng)) if finite else None


def _groups(records: list[dict]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((record["method"], record["variant"]) for record in records))


def summarise(records: list[dict]) -> list[dict]:
    """Per method and variant: n and, per metric, (mean, low, high) of its 95% bootstrap interval (None: unmeasured)."""
    rng = np.random.default_rng(0)
    rows = []
    for method, variant in _groups(records):
        chosen = [r for r in records if r["method"] == method and r["variant"] == variant]
        row = {"method": method, "variant": variant, "n": len(chosen)}
        for key in (metric.key for metric in SUMMARY):
            row[key] = _statistics([r.get(key) for r in chosen], rng)
        rows.append(row)
    return rows


def tuned(record: dict) -> bool:
    return record.get("tuned", True)  # records of before the untuned control are all tuned


def _with_sma(record: dict) -> bool:
    return record["sma"]


def _tuned_without_sma(record: dict) -> bool:
    return tuned(record) and not record["sma"]


def untuned(record: dict) -> bool:
    return not tuned(record)


def pair_up(
    records: list[dict], treated: Callable = _with_sma, control: Callable = _tuned_without_sma
) -> list[tuple[dict, dict]]:
    """Each `treated` record with the `control` record of the same method on the same reference, target and
    seed; by default each record with SMA and its run without SMA."""

    def pair(record: dict) -> tuple:
        return record["method"], record["reference"], record["target"], record["seed"]

    baseline = {pair(r): r for r in records if control(r)}
    return [(r, baseline[pair(r)]) for r in records if treated(r) and pair(r) in baseline]


def paired_differences(
    records: list[dict], treated: Callable = _with_sma, control: Callable = _tuned_without_sma
) -> list[dict]:
    """Each variant with SMA minus the same method without SMA on the same reference, target and seed (or
    other `treated` and `control` records, as `pair_up`): the pairing removes the spread between references,
    so the intervals measure SMA's effect."""
    rng = np.random.default_rng(1)
    pairs = pair_up(records, treated, control)
    rows = []
    for method, variant in _groups(records):
        chosen = [(r, base) for r, base in pairs if r["method"] == method and r["variant"] == variant]
        if not chosen:
            continue
        row = {"method": method, "variant": f"{variant} minus {chosen[0][1]['variant']}", "n": len(chosen)}
        for key in (metric.key for metric in SUMMARY):
            differences = [
                r[key] - base[key] for r, base in chosen if r.get(key) is not None and base.get(key) is not None
            ]
            row[key] = _statistics(differences, rng)
        rows.append(row)
    return rows
