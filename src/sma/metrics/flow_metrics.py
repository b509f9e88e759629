"""Motion metrics on dense flow: flow-field similarity to a reference, temporal consistency, motion magnitude.

All three use the DIS flow of `sma.metrics.flow` at its working size (the longer side at most
128 pixels by default); pass `video_flow` results instead of frames to compute it once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from sma.metrics.flow import VideoFlow, check_frame_counts, consistent, sample, video_flow
from sma.metrics.tracking import inside_frame

Video = np.ndarray | torch.Tensor | VideoFlow


@dataclass(frozen=True)
class FlowSimilarity:
    """cosine: magnitude-weighted mean cosine of the two flow fields (1: same directions everywhere);
    endpoint_error: mean |F - F'| in reference pixels per frame; relative_endpoint_error: the same
    over the reference's mean flow length (0: same flow, 1: as far off as a still video)."""

    cosine: float
    endpoint_error: float
    relative_endpoint_error: float
    cells: int

    def as_dict(self) -> dict:
        return asdict(self)


def flow_similarity(reference: Video, generated: Video, *, cells: int = 16) -> FlowSimilarity:
    """Compare the flow fields of two videos with the same number of frames, position by position.

    Each forward flow is averaged down to `cells` x `cells` (so small misplacements and flow
    noise wash out) and expressed in reference pixels: F (reference), F' (generated), over all
    frame pairs k and cells c,
        cosine = sum F.F' / sum |F| |F'|      endpoint_error = mean |F - F'|
        relative_endpoint_error = sum |F - F'| / sum |F|.
    Unlike motion fidelity this is not invariant to where the motion happens.
    """
    reference, generated = video_flow(reference), video_flow(generated)
    check_frame_counts(len(reference.frames), len(generated.frames))
    pixels = np.array(reference.source_size[::-1], np.float64)  # (width, height): fractions to reference pixels
    flow, other = _pooled(reference, cells) * pixels, _pooled(generated, cells) * pixels
    lengths, other_lengths = np.linalg.norm(flow, axis=-1), np.linalg.norm(other, axis=-1)
    errors = np.linalg.norm(flow - other, axis=-1)
    weight, total, missed = np.sum(lengths * other_lengths), lengths.sum(), errors.sum()
    return FlowSimilarity(
        cosine=float(np.sum(flow * other) / weight) if weight > 0 else float(missed == 0),
        endpoint_error=float(errors.mean()),
        relative_endpoint_error=float(missed / total) if total > 0 else (float("inf") if missed > 0 else 0.0),
        cells=cells,
    )


def warping_error(video: Video) -> float:
    """Temporal consistency as flow-warping error (Lai et al. 2018), lower is steadier.

    With I_k the working frames as RGB in [0, 1], w_k the flow from frame k to k+1 and M_k the
    pixels whose flow passes the forward-backward check and stays in the frame (not occluded),
        E = 1/(f-1) sum_k  sum_x M_k(x) |I_{k+1}(x + w_k(x)) - I_k(x)|^2 / (3 sum_x M_k(x)).
    The flow is the video's own, so E measures flicker and what flow cannot explain, not
    whether the motion is the right one.
    """
    flow = video_flow(video)
    height, width = flow.frames.shape[1:3]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    frames = flow.frames.astype(np.float32) / 255.0
    errors = []
    for step, (ahead, back) in enumerate(zip(flow.forward, flow.backward, strict=True)):
        landed = points + ahead.reshape(-1, 2)
        kept = inside_frame(landed, height, width) & consistent(ahead.reshape(-1, 2), sample(back, landed))
        if not kept.any():
            continue
        warped = sample(frames[step + 1], landed[kept])
        errors.append(float(np.mean((warped - frames[step].reshape(-1, 3)[kept]) ** 2)))
    return float(np.mean(errors)) if errors else 0.0


def motion_magnitude(video: Video, top: float = 0.05) -> float:
    """How much a video moves (a "dynamic degree"), as a share of the frame diagonal per frame.

    With w_k the flow from frame k to k+1 on the working frames of diagonal D,
        m = 1/(f-1) sum_k mean(largest `top` share of |w_k(x)| over pixels x) / D.
    The top share follows VBench's dynamic degree (which thresholds it per video), so a small
    object moving fast counts although most of the frame is still.
    """
    flow = video_flow(video)
    lengths = np.linalg.norm(flow.forward, axis=-1).reshape(len(flow.forward), -1)
    count = max(1, round(top * lengths.shape[1]))
    largest = np.sort(lengths, axis=1)[:, -count:]
    return float(largest.mean() / flow.diagonal)


def _pooled(flow: VideoFlow, cells: int) -> np.ndarray:
    """(f-1, cells, cells, 2) forward flow averaged over cells, in fractions of the frame width and height."""
    height, width = flow.frames.shape[1:3]
    pooled = np.stack([cv2.resize(field, (cells, cells), interpolation=cv2.INTER_AREA) for field in flow.forward])
    return pooled.astype(np.float64) / np.array([width, height], np.float64)
