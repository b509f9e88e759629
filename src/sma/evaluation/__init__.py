"""Evaluation in one place: `score` (every score of an output against its reference and, for a synthetic one,
its ground truth), the table of metrics (key, title, direction; the keys older files used) and its printer."""

from sma.evaluation.scoring import PROTOCOLS, GroundTruth, Target, ground_truth_scores, protocol_scores, score
from sma.evaluation.table import (
    BY_KEY,
    HEADLINE,
    METRICS,
    MIN_TRACKS,
    SUMMARY,
    Metric,
    current_keys,
    means,
    score_text,
    table_text,
    track_warning,
)

__all__ = [
    "BY_KEY",
    "HEADLINE",
    "METRICS",
    "MIN_TRACKS",
    "PROTOCOLS",
    "SUMMARY",
    "GroundTruth",
    "Metric",
    "Target",
    "current_keys",
    "ground_truth_scores",
    "means",
    "protocol_scores",
    "score",
    "score_text",
    "table_text",
    "track_warning",
]
