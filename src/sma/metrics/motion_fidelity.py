"""Motion fidelity (DMT, docs/design.md §5): do the tracked points of two videos move in the same directions?

For tracks T (reference) and T' (generated) with per-frame displacements v_k and v'_k,
corr(T, T') = (1/(F-1)) sum_k v_k . v'_k / (|v_k| |v'_k|). DMT's published `motion_fidelity`
is one-sided: the mean over generated tracks of the best correlation with any reference
track. The two-sided form adds the mean over reference tracks of the best correlation with
any generated track to it (the SMA paper's form, docs/design.md §5), so it lies in [-2, 2].

Guards: a displacement shorter than `still` pixels is zero-length. A zero-length step against
a moving one scores 0; steps where both are zero-length carry no evidence and are left out of
the mean (so a video scores 1 against itself even where its objects pause). Only tracks
followed through the whole clip that travel at least `min_travel` of the frame diagonal
count: still background would otherwise match still background and drown the motion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from sma.metrics.tracking import LucasKanadeTracker, Tracker, Tracks, grid_points
from sma.video.errors import VideoError
from sma.video.frames import as_frames


@dataclass(frozen=True)
class MotionFidelity:
    """motion_fidelity: DMT's one-sided form (generated -> reference), comparable with published tables;
    reference_to_generated: the other half; two_sided: their sum (the SMA paper's form).
    Track counts are the moving tracks used."""

    motion_fidelity: float
    reference_to_generated: float
    two_sided: float
    tracker: str
    reference_tracks: int
    generated_tracks: int

    def as_dict(self) -> dict:
        return asdict(self)


def motion_fidelity(
    reference: np.ndarray | torch.Tensor,
    generated: np.ndarray | torch.Tensor,
    *,
    tracker: Tracker | None = None,
    grid_size: int = 32,
    mask: np.ndarray | None = None,
    box: tuple[float, float, float, float] | None = None,
    min_travel: float = 0.01,
    still: float = 0.1,
) -> MotionFidelity:
    """Motion fidelity of `generated` to `reference` (uint8 frames (f, h, w, 3) or [-1, 1] tensors).

    Both videos are tracked from a `grid_size` x `grid_size` grid on their first frame. `mask`
    (h, w) bool on the reference frame, or `box` = (x0, y0, x1, y1) in reference pixels, keeps
    only the grid points inside it, in both videos (scaled to the generated size).
    """
    reference, generated = as_frames(reference), as_frames(generated)
    if len(reference) != len(generated):
        raise VideoError(
            f"the reference has {len(reference)} frames and the generated video {len(generated)}; "
            "read both with the same number of frames"
        )
    if len(reference) < 2:
        raise VideoError("motion fidelity needs at least 2 frames")
    tracker = tracker or LucasKanadeTracker()
    region = _region(mask, box, reference.shape[1:3])
    reference_tracks = _moving_tracks(reference, tracker, grid_size, region, min_travel)
    generated_tracks = _moving_tracks(generated, tracker, grid_size, region, min_travel)
    correlation = track_correlation(generated_tracks, reference_tracks, still)
    forward, backward = _best_match_mean(correlation), _best_match_mean(correlation.T)
    return MotionFidelity(
        motion_fidelity=forward,
        reference_to_generated=backward,
        two_sided=forward + backward,
        tracker=tracker.name,
        reference_tracks=len(reference_tracks),
        generated_tracks=len(generated_tracks),
    )


def track_correlation(tracks: np.ndarray, others: np.ndarray, still: float = 0.1) -> np.ndarray:
    """(n, m) mean cosine between the per-frame displacements of tracks (n, f, 2) and others (m, f, 2).

    The mean runs over the steps where at least one of the two moves; two tracks that never
    move correlate 1.
    """
    unit, moving = _unit_steps(tracks, still)
    other_unit, other_moving = _unit_steps(others, still)
    cosine_sum = np.einsum("nkc,mkc->nm", unit, other_unit)
    either_moving = moving.sum(1)[:, None] + other_moving.sum(1)[None, :] - moving @ other_moving.T
    return np.where(either_moving > 0, cosine_sum / np.maximum(either_moving, 1), 1.0)


def _unit_steps(tracks: np.ndarray, still: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit displacements (n, f-1, 2), zero for steps shorter than `still`, and which steps move (n, f-1)."""
    displacement = np.diff(tracks.astype(np.float64), axis=1)
    length = np.linalg.norm(displacement, axis=2)
    moving = length >= still
    unit = np.where(moving[..., None], displacement / np.maximum(length, still)[..., None], 0.0)
    return unit, moving.astype(np.float64)


def _best_match_mean(correlation: np.ndarray) -> float:
    """Mean over rows of the best column; no tracks on one side only scores 0, none on both 1 (both still)."""
    rows, columns = correlation.shape
    if rows == 0 or columns == 0:
        return 1.0 if rows == columns == 0 else 0.0
    return float(correlation.max(axis=1).mean())


def _moving_tracks(frames: np.ndarray, tracker: Tracker, grid_size: int, region: np.ndarray | None, min_travel: float):
    height, width = frames.shape[1:3]
    points = grid_points(height, width, grid_size)
    if region is not None:
        rows = np.clip(np.round(points[:, 1] * region.shape[0] / height).astype(int), 0, region.shape[0] - 1)
        columns = np.clip(np.round(points[:, 0] * region.shape[1] / width).astype(int), 0, region.shape[1] - 1)
        points = points[region[rows, columns]]
    tracks: Tracks = tracker.track(frames, points)
    whole = tracks.positions[tracks.valid.all(axis=1)]
    travel = np.linalg.norm(whole - whole[:, :1], axis=2).max(axis=1) if len(whole) else np.zeros(0)
    return whole[travel >= min_travel * np.hypot(height, width)]


def _region(mask: np.ndarray | None, box, size: tuple[int, int]) -> np.ndarray | None:
    if mask is not None and box is not None:
        raise ValueError("pass a mask or a box, not both")
    if box is not None:
        x0, y0, x1, y1 = box
        mask = np.zeros(size, bool)
        mask[max(0, round(y0)) : round(y1), max(0, round(x0)) : round(x1)] = True
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != tuple(size):
            raise ValueError(f"the mask is {mask.shape}, the reference frames {tuple(size)}")
        if not mask.any():
            raise ValueError("the mask or box selects no pixel")
    return mask
