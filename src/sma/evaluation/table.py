"""The one table of metrics: each score's key, title and direction, the keys older files used, and how a set of
scored videos is printed. Every writer (run folders' metrics.json, `sma evaluate`, `sma demo`, `sma benchmark`'s
results.jsonl) uses these keys; every reader goes through `current_keys`, so files of any version load alike."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """key: the record key; higher: True when higher is better, False when lower is, None when neither (a ratio
    whose best is 1); form: how it is printed; summary: shown in a benchmark's summary tables."""

    key: str
    title: str
    higher: bool | None
    form: str = "{:.3f}"
    summary: bool = True

    @property
    def arrow(self) -> str:
        return {True: " ↑", False: " ↓", None: ""}[self.higher]


HEADLINE = "robust_motion_fidelity"  # the motion score every report leads with (docs/design.md §5)
METRICS: tuple[Metric, ...] = (
    Metric(HEADLINE, "motion fidelity (robust)", True, "{:.4f}"),
    Metric("robust_two_sided_mean", "robust MF two-sided (mean)", True, "{:.4f}"),
    Metric("motion_fidelity_lk", "MF (Lucas-Kanade)", True, "{:.4f}"),
    Metric("motion_fidelity_lk_two_sided_mean", "MF two-sided (Lucas-Kanade)", True, "{:.4f}", summary=False),
    Metric("flow_cosine", "flow cosine", True, "{:.4f}"),
    Metric("flow_relative_endpoint_error", "flow EPE (relative)", False, "{:.4f}"),
    Metric("mtbench_motion_fidelity", "MTBench MF (DeT)", True, "{:.4f}"),
    Metric("mtbench_cotracker", "MTBench MF (given tracks)", True, "{:.4f}", summary=False),
    Metric("mtbench_text_fidelity", "MTBench EF (CLIP score)", True, "{:.3f}"),
    Metric("mtbench_temporal_consistency", "MTBench TC (DINO)", True, "{:.4f}"),
    Metric("warping_error", "warping error", False, "{:.5f}", summary=False),
    Metric("motion_magnitude_ratio", "motion ratio", None, summary=False),
    Metric("robust_reference_tracks", "tracks (reference)", None, "{:.0f}", summary=False),
    Metric("robust_generated_tracks", "tracks (output)", None, "{:.0f}", summary=False),
    Metric("trajectory_error_px", "trajectory error (px)", False),
    Metric("object_error_px", "object error (px)", False),
    Metric("camera_error_px", "camera error (px)", False),
    Metric("appearance_accuracy", "appearance", True),
    Metric("colour_leakage", "colour leakage", False),
    Metric("texture_leakage", "texture leakage", False),
    Metric("clip_text_alignment", "CLIP text", True, "{:.4f}"),
    Metric("clip_frame_consistency", "CLIP consistency", True, "{:.4f}"),
)
# fewest tracks carrying a robust score on either side that it is trusted on (see `track_warning`); with fewer on grey
# flow, `score` tracks both videos on colour flow (`sma.metrics.motion_fidelity.colour_fallback`)
MIN_TRACKS = 20
BY_KEY = {metric.key: metric for metric in METRICS}
SUMMARY = tuple(metric for metric in METRICS if metric.summary)

# keys of older files, by today's key: renamed when the Lucas-Kanade scores took their own prefix
RENAMED = {
    "motion_fidelity": "motion_fidelity_lk",
    "two_sided_mean": "motion_fidelity_lk_two_sided_mean",
    "motion_fidelity_two_sided_mean": "motion_fidelity_lk_two_sided_mean",
    "reference_to_generated": "motion_fidelity_lk_reference_to_generated",
    "tracker": "lk_tracker",
    "reference_tracks": "lk_reference_tracks",
    "generated_tracks": "lk_generated_tracks",
    "robust_tracks": "robust_generated_tracks",
}
# keys of files written while two-sided scores were sums (0..2), read as the means (0..1) they now are
SUMMED = {
    "two_sided": "motion_fidelity_lk_two_sided_mean",
    "robust_two_sided": "robust_two_sided_mean",
    "motion_fidelity_two_sided": "motion_fidelity_lk_two_sided_mean",
}


def current_keys(record: dict) -> dict:
    """A score record of any version under today's keys (sums read as today's means); a key already there wins."""
    found = {}
    for key, value in record.items():
        if key in SUMMED:
            found.setdefault(SUMMED[key], None if value is None else value / 2)
        elif key in RENAMED and RENAMED[key] not in record:
            found.setdefault(RENAMED[key], value)
        else:
            found[key] = value
    return found


def track_warning(record: dict) -> str | None:
    """Why a record's robust motion fidelity is not to be trusted, or None: no moving point tracked on one side
    (undefined), or fewer than MIN_TRACKS carrying tracks on either side (a handful of points on one object's
    edge, which can agree or disagree by chance)."""
    reference, generated = record.get("robust_reference_tracks"), record.get("robust_generated_tracks")
    if reference is None or generated is None:
        return None  # a record of before the counts
    counts = f"{reference} reference and {generated} output tracks"
    if min(reference, generated) == 0:
        side = "reference" if reference == 0 else "output"
        return f"no moving point was tracked in the {side} ({counts}): its motion fidelity is undefined"
    if min(reference, generated) < MIN_TRACKS:
        return f"its motion fidelity rests on {counts}, fewer than {MIN_TRACKS}: read it as a rough guide"
    return None


def score_text(value: float | None, form: str = "{:.3f}") -> str:
    """A score as printed: "undefined" where it has none (no moving point tracked)."""
    return "undefined" if value is None else form.format(value)


def means(records: list[dict], by: str) -> dict[str, dict[str, float | None]]:
    """Per value of `by` (e.g. each kind of video): the mean of every metric of the table its records measured
    (None where none of them has a defined value)."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record[by], []).append(record)
    found = {}
    for name, chosen in groups.items():
        found[name] = {}
        for metric in METRICS:
            values = [record[metric.key] for record in chosen if metric.key in record]
            defined = [value for value in values if value is not None]
            if values:
                found[name][metric.key] = sum(defined) / len(defined) if defined else None
    return found


def table_text(rows: list[dict], label: str = "video", keys: Iterable[str] | None = None) -> str:
    """Aligned columns, one row per record: its `label` and every metric of the table (or of `keys`, in the table's
    order) any row measured; "-" where a row lacks it, "undefined" where it has no value."""
    wanted = set(keys) if keys is not None else None
    shown = [m for m in METRICS if (wanted is None or m.key in wanted) and any(m.key in row for row in rows)]
    lines = [[label, *(metric.title for metric in shown)]]
    lines += [
        [str(row[label]), *(score_text(row[m.key], m.form) if m.key in row else "-" for m in shown)] for row in rows
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)
