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

`robust_motion_fidelity` keeps the formula but feeds it tracks that carry motion, so that
compression noise on still ground cannot outweigh a wrong trajectory: dense DIS flow chained
with a forward-backward check instead of Lucas-Kanade, tracks kept only when they travel at
least `motion_share` of the clip's own motion, and the mean over best matches weighted by how
far each track travels. docs/results.md (metric card) measures both forms.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from sma.metrics.flow import CHANNELS, FlowTracker, VideoFlow, check_frame_counts, video_flow
from sma.metrics.tracking import LucasKanadeTracker, Tracker, Tracks, grid_points
from sma.video.frames import as_frames


@dataclass(frozen=True)
class MotionFidelity:
    """motion_fidelity: DMT's one-sided form (generated -> reference), comparable with published tables;
    reference_to_generated: the other half; two_sided_mean: their mean, 0..1 like either (the SMA paper sums
    them, up to 2: files written before the mean hold that sum under `two_sided`, read by
    `sma.evaluation.current_keys`).
    Track counts are the moving tracks used. With no moving track in one of the videos the scores are
    undefined: 0 in the fields (for arithmetic), None in `as_dict` (null in a metrics.json), "undefined" printed."""

    motion_fidelity: float
    reference_to_generated: float
    two_sided_mean: float
    tracker: str
    reference_tracks: int
    generated_tracks: int

    @property
    def defined(self) -> bool:
        return self.reference_tracks > 0 and self.generated_tracks > 0

    def as_dict(self) -> dict:
        values = asdict(self)
        if not self.defined:
            values |= dict.fromkeys(SCORES)
        return values


COLOUR_FALLBACK = "colour fallback: "  # where a robust tracker's description says what its tracks rest on if not grey
SCORES = ("motion_fidelity", "reference_to_generated", "two_sided_mean")  # the fields that are undefined without tracks


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
    check_frame_counts(len(reference), len(generated))
    tracker = tracker or LucasKanadeTracker()
    region = region_mask(mask, box, reference.shape[1:3])
    reference_tracks = _moving_tracks(reference, tracker, grid_size, region, min_travel)
    generated_tracks = _moving_tracks(generated, tracker, grid_size, region, min_travel)
    correlation = track_correlation(generated_tracks, reference_tracks, still)
    forward, backward = _best_match_mean(correlation), _best_match_mean(correlation.T)
    return MotionFidelity(
        motion_fidelity=forward,
        reference_to_generated=backward,
        two_sided_mean=(forward + backward) / 2,
        tracker=tracker.name,
        reference_tracks=len(reference_tracks),
        generated_tracks=len(generated_tracks),
    )


def robust_motion_fidelity(
    reference: np.ndarray | torch.Tensor | VideoFlow,
    generated: np.ndarray | torch.Tensor | VideoFlow,
    *,
    grid_size: int = 48,
    mask: np.ndarray | None = None,
    box: tuple[float, float, float, float] | None = None,
    motion_share: float = 0.5,
    min_travel: float = 0.01,
    min_tracks: int = 0,
) -> MotionFidelity:
    """DMT's motion fidelity on the tracks of a clip that carry its motion, steps weighted by their length.

    Tracks: a `grid_size` x `grid_size` grid on the first frame, carried by DIS flow (`FlowTracker`),
    kept when followed through the whole clip. With travel t_i = max_k |p_ik - p_i0| (how far
    track i gets from its start), track i counts when t_i >= max(min_travel * diagonal,
    motion_share * T), T the 99th percentile of the clip's travels: still ground and the jitter
    of compression fall below it. With corr as in `step_weighted_correlation` (not DMT's mean over
    steps, where a step of a tenth of a pixel, the codec's noise, counts as much as a long one) over
    generated tracks i and reference tracks j,
        motion_fidelity        = sum_i t_i max_j corr(i, j) / sum_i t_i
        reference_to_generated = sum_j t_j max_i corr(i, j) / sum_j t_j,  two_sided_mean = their mean.
    Videos are uint8 frames, [-1, 1] tensors or `video_flow` results (to share the flow with the
    other flow metrics); `mask` or `box` are in reference pixels, as for `motion_fidelity`.
    As in DMT, a track's best partner may be anywhere: a clip whose tracks move in opposite
    directions can match itself played backwards (see the metric card); `flow_similarity` cannot.

    The flow is computed on grey frames. When either video keeps fewer than `min_tracks` tracks on grey (0: never),
    both are tracked again on the first colour channel of the flow's CHANNELS on which both keep `min_tracks`, and
    the tracker's description says so; with none, the grey tracks stand (`colour_fallback`).
    """
    reference, generated = video_flow(reference), video_flow(generated)
    check_frame_counts(len(reference.frames), len(generated.frames))
    region = region_mask(mask, box, reference.source_size)

    def carrying(flow: VideoFlow) -> tuple[np.ndarray, np.ndarray]:
        return carrying_tracks(flow, grid_size, region, motion_share, min_travel)

    (reference_tracks, reference_travel), (generated_tracks, generated_travel), basis = colour_fallback(
        reference, generated, carrying, min_tracks
    )
    correlation = step_weighted_correlation(generated_tracks, reference_tracks)
    forward = _best_match_mean(correlation, generated_travel)
    backward = _best_match_mean(correlation.T, reference_travel)
    return MotionFidelity(
        motion_fidelity=forward,
        reference_to_generated=backward,
        two_sided_mean=(forward + backward) / 2,
        tracker=FlowTracker(reference.preset, reference.max_side).name + f", motion share {motion_share}{basis}",
        reference_tracks=len(reference_tracks),
        generated_tracks=len(generated_tracks),
    )


def colour_fallback(reference: VideoFlow, generated: VideoFlow, carrying, min_tracks: int):
    """The carrying tracks and travels `carrying` finds in each video's grey flow, or, when either keeps fewer than
    `min_tracks`, in the first colour channel's flow (of CHANNELS after grey) where both keep `min_tracks`; and what
    they rest on, for the tracker's description ("" for grey alone). Grey loses an object whose grey matches its ground
    (a green star on gray checks) and ties DIS to the edges of panning stripes; CIELAB's a* and b* see the object and
    not achromatic ground. Their tracks follow the synthetic world's true paths (benchmarks/robust_tracks.py), where
    loosening the forward-backward check let through tracks that follow nothing in the scene."""
    found = carrying(reference), carrying(generated)
    kept = [len(travel) for _, travel in found]
    if min(kept) >= min_tracks:
        return *found, ""
    grey = f"grey flow kept {kept[0]} reference and {kept[1]} output tracks, fewer than {min_tracks}"
    for channel in list(CHANNELS)[1:]:
        coloured = [
            carrying(video_flow(flow.frames, flow.max_side, flow.preset, channel)) for flow in (reference, generated)
        ]
        if min(len(travel) for _, travel in coloured) >= min_tracks:
            return *coloured, f"; {COLOUR_FALLBACK}tracked on CIELAB {channel} flow, as {grey}"
    return *found, f"; {COLOUR_FALLBACK}no CIELAB channel kept {min_tracks} in both either, as {grey}"


def colour_fallback_note(tracker: str) -> str | None:
    """What a robust tracker's description says of the colour fallback (`colour_fallback`), or None if it was not
    needed."""
    _, fallback, what = tracker.partition(COLOUR_FALLBACK)
    return fallback + what or None


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


def step_weighted_correlation(tracks: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(n, m) cosine of the per-frame displacements of tracks (n, f, 2) and others (m, f, 2), each step weighted
    by its mean length over the pair: corr = sum_k (d_k . u'_k + u_k . d'_k) / (L + L'), d a displacement, u its
    unit vector, L a track's path length. Two tracks that never move correlate 1."""
    displacement, other_displacement = (np.diff(points.astype(np.float64), axis=1) for points in (tracks, others))
    unit, other_unit = (unit_vectors(step) for step in (displacement, other_displacement))
    length = np.linalg.norm(displacement, axis=2).sum(1)
    other_length = np.linalg.norm(other_displacement, axis=2).sum(1)
    aligned = np.einsum("nkc,mkc->nm", displacement, other_unit) + np.einsum("nkc,mkc->nm", unit, other_displacement)
    total = length[:, None] + other_length[None, :]
    return np.where(total > 0, aligned / np.maximum(total, np.finfo(np.float64).tiny), 1.0)


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """Each vector along the last axis scaled to length 1; zero vectors stay zero."""
    length = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 0)


def _unit_steps(tracks: np.ndarray, still: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit displacements (n, f-1, 2), zero for steps shorter than `still`, and which steps move (n, f-1)."""
    displacement = np.diff(tracks.astype(np.float64), axis=1)
    length = np.linalg.norm(displacement, axis=2)
    moving = length >= still
    unit = np.where(moving[..., None], displacement / np.maximum(length, still)[..., None], 0.0)
    return unit, moving.astype(np.float64)


def _best_match_mean(correlation: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean over rows of the best column, weighted by `weights` (one per row) if given;
    no tracks on one side only scores 0, none on both 1 (both still)."""
    rows, columns = correlation.shape
    if rows == 0 or columns == 0:
        return 1.0 if rows == columns == 0 else 0.0
    return float(np.average(correlation.max(axis=1), weights=weights))


def _moving_tracks(frames: np.ndarray, tracker: Tracker, grid_size: int, region: np.ndarray | None, min_travel: float):
    height, width = frames.shape[1:3]
    whole, travel = _whole_tracks(tracker.track(frames, grid_in_region(height, width, grid_size, region)))
    return whole[travel >= min_travel * np.hypot(height, width)]


def carrying_tracks(
    flow: VideoFlow, grid_size: int = 48, region=None, motion_share: float = 0.5, min_travel: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Whole tracks (n, f, 2) of a `grid_size` grid (in `region`) that travel at least max(min_travel * diagonal,
    motion_share * the 99th percentile of travel), with their travels (n,): the tracks `robust_motion_fidelity`
    scores."""
    height, width = flow.frames.shape[1:3]
    whole, travel = _whole_tracks(FlowTracker().chain(flow, grid_in_region(height, width, grid_size, region)))
    if len(travel) == 0:
        return whole, travel
    kept = travel >= max(min_travel * flow.diagonal, motion_share * np.quantile(travel, 0.99))
    return whole[kept], travel[kept]


def grid_in_region(height: int, width: int, grid_size: int, region: np.ndarray | None) -> np.ndarray:
    """Grid points (n, 2) in pixels of a (height, width) frame, inside `region` (a mask of any size) if given."""
    points = grid_points(height, width, grid_size)
    if region is None:
        return points
    rows = np.clip(np.round(points[:, 1] * region.shape[0] / height).astype(int), 0, region.shape[0] - 1)
    columns = np.clip(np.round(points[:, 0] * region.shape[1] / width).astype(int), 0, region.shape[1] - 1)
    return points[region[rows, columns]]


def _whole_tracks(tracks: Tracks) -> tuple[np.ndarray, np.ndarray]:
    """Tracks followed through the whole clip (n, f, 2) and how far each gets from its start (n,)."""
    whole = tracks.positions[tracks.valid.all(axis=1)]
    travel = np.linalg.norm(whole - whole[:, :1], axis=2).max(axis=1) if len(whole) else np.zeros(0)
    return whole, travel


def region_mask(mask: np.ndarray | None, box, size: tuple[int, int]) -> np.ndarray | None:
    """The (height, width) = `size` mask a `mask` or a `box` (x0, y0, x1, y1 in pixels) selects; None for neither."""
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
