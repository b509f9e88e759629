"""Metrics against a synthetic reference's ground truth: the camera's motion and appearance leaking from it.

Per-object trajectory error is `sma.metrics.trajectory.trajectory_error` (`per_object`); this
module adds the camera, whose true path is known for synthetic clips (`SyntheticVideo.camera`),
and leakage: the reference's background texture or object colours showing up in an output
that was asked for another look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from sma.metrics.appearance import colour_mask
from sma.metrics.flow import check_frame_counts, consistent, sample, video_flow
from sma.video.frames import as_frames, resize_frames


@dataclass(frozen=True)
class CameraError:
    """mean_error: mean distance (pixels) between where the estimated and the true camera carry points of a
    grid over the frame, over frames; relative_error: the same over the mean distance the true camera
    carries them (nan for a still camera); final_error: at the last frame."""

    mean_error: float
    relative_error: float
    final_error: float

    def as_dict(self) -> dict:
        return asdict(self)


def camera_motion(
    video: np.ndarray | torch.Tensor, *, side: int = 256, spacing: int = 8, border: float = 0.1
) -> np.ndarray:
    """(f, 2, 3) the camera's motion in `video` as affine maps from the first frame to each frame, in pixels.

    The frames are resized (up or down) so that the longer side is `side` pixels: DIS flow on a
    64-pixel clip is off by about 1.5 px after 16 frames, at 256 by under 0.3 (the tests). Each
    step's forward flow, on a grid every `spacing` working pixels away from a `border` share of
    the frame, with its forward-backward check, is fitted with a similarity transform (shift,
    rotation, scale; RANSAC, 1 working pixel) and the steps are chained. The still background
    is the largest set of points that agree, so objects that move otherwise are outliers. A
    step with fewer than 12 usable points, or no fit, counts as a still camera: on a plain
    background, or along stripes, a camera's motion cannot be seen and is not measured.
    """
    frames = as_frames(video)
    height, width = frames.shape[1:3]
    scale = side / max(height, width)
    working = (max(1, round(height * scale)), max(1, round(width * scale)))
    flow = video_flow(resize_frames(frames, working, fit="stretch"), max_side=max(working))
    factors = np.array([working[1] / width, working[0] / height])

    def to_source(points: np.ndarray) -> np.ndarray:  # pixel centres: x_working = f x + (f - 1) / 2
        return (points - (factors - 1) / 2) / factors

    margin = (round(border * working[0]), round(border * working[1]))
    ys, xs = np.mgrid[margin[0] : working[0] - margin[0] : spacing, margin[1] : working[1] - margin[1] : spacing]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    maps = np.zeros((len(frames), 2, 3))
    maps[0, :, :2] = np.eye(2)
    chained = np.eye(3)
    for step, (ahead, back) in enumerate(zip(flow.forward, flow.backward, strict=True)):
        moved = sample(ahead, points)
        landed = points + moved
        kept = consistent(moved, sample(back, landed))
        step_map = np.eye(3)
        if kept.sum() >= 12:
            transform, _ = cv2.estimateAffinePartial2D(
                to_source(points[kept]), to_source(landed[kept]), method=cv2.RANSAC, ransacReprojThreshold=1.0 / scale
            )
            if transform is not None:
                step_map[:2] = transform
        chained = step_map @ chained
        maps[step + 1] = chained[:2]
    return maps


def camera_error(video: np.ndarray | torch.Tensor, truth: np.ndarray, *, grid: int = 8) -> CameraError:
    """Compare the camera motion of `video` (`camera_motion`) with the true maps `truth` (f, 2, 3).

    Both carry a `grid` x `grid` lattice of points spread over the frame from the first frame to
    every later one; the error is the mean distance between the two landing points.
    """
    frames = as_frames(video)
    truth = np.asarray(truth, np.float64)
    check_frame_counts(len(truth), len(frames))
    estimated = camera_motion(frames)
    height, width = frames.shape[1:3]
    ys, xs = np.meshgrid(np.linspace(0, height - 1, grid), np.linspace(0, width - 1, grid), indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(grid * grid)])  # (3, n) homogeneous
    landed, expected = estimated @ points, truth @ points  # (f, 2, n)
    distances = np.linalg.norm(landed - expected, axis=1)[1:]  # the first frame is the identity on both sides
    travel = np.linalg.norm(expected - points[:2], axis=1)[1:]
    return CameraError(
        mean_error=float(distances.mean()),
        relative_error=float(distances.mean() / travel.mean()) if travel.mean() > 1e-6 else float("nan"),
        final_error=float(distances[-1].mean()),
    )


def texture_leakage(
    reference: np.ndarray | torch.Tensor,
    video: np.ndarray | torch.Tensor,
    masks: np.ndarray | None = None,
    *,
    sigma: float = 4.0,
    margin: int = 2,
) -> float:
    """How much of the reference's background texture the video shows, frame by frame, in place.

    Both videos in grey, minus their local mean (a Gaussian of `sigma` pixels: only texture is
    left, not colour or shading), are correlated frame by frame over the background: the pixels
    outside `masks` (f, h, w, the reference's objects), widened by `margin` pixels. The result
    is the mean absolute normalised cross-correlation: 1 when the reference's texture is there
    whatever its colours (brightness inverted too), near 0 for an unrelated one; a video that
    mixes a share a of the texture with (1 - a) of another of equal contrast scores about
    a / sqrt(a^2 + (1 - a)^2). The local mean is taken over background pixels only, so objects'
    edges leave no halo.
    """
    reference, video = as_frames(reference), as_frames(video)
    check_frame_counts(len(reference), len(video))
    if reference.shape[1:3] != video.shape[1:3]:
        raise ValueError(f"frame sizes differ: {reference.shape[1:3]} and {video.shape[1:3]}")
    background = np.ones(reference.shape[:3], bool)
    if masks is not None:
        kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
        background = ~np.stack([cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) for mask in masks])
    scores = []
    for first, second, kept in zip(reference, video, background, strict=True):
        a, b = _texture(first, kept, sigma), _texture(second, kept, sigma)
        norm = np.sqrt(np.sum(a * a) * np.sum(b * b))
        if norm > 1e-9:
            scores.append(abs(float(np.sum(a * b) / norm)))
    return float(np.mean(scores)) if scores else 0.0


def colour_leakage(
    video: np.ndarray | torch.Tensor,
    colours: Sequence[tuple[int, int, int]],
    allowed: Sequence[tuple[int, int, int]] = (),
    tolerance: float = 60.0,
) -> float:
    """Share of pixels within `tolerance` of any of `colours` (the reference's objects') that is not near one of
    `allowed` (the target's), over all frames: 0 when none of the reference's colours is left."""
    frames = as_frames(video)
    leaked = [colour for colour in colours if all(np.linalg.norm(np.subtract(colour, a)) > tolerance for a in allowed)]
    if not leaked:
        return 0.0
    return float(np.logical_or.reduce([colour_mask(frames, colour, tolerance) for colour in leaked]).mean())


def _texture(frame: np.ndarray, kept: np.ndarray, sigma: float) -> np.ndarray:
    """The grey levels of the `kept` pixels minus their local mean over kept pixels only (a Gaussian of `sigma`,
    normalised by the kept share), so that objects' edges leave no halo in the background's texture."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    weight = kept.astype(np.float32)
    local = cv2.GaussianBlur(grey * weight, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma), 1e-6)
    texture = (grey - local)[kept]
    return texture - texture.mean()
