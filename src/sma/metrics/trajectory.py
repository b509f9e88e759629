"""Trajectory error against ground truth: how far a video's objects stray from where they should go.

Used with synthetic clips, whose true object centres are known. The object is followed by
tracking points on it from its true position in the first frame and fitting a similarity
transform (shift, rotation, scale) to them frame by frame, so spinning or growing shapes
still give their centre.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from sma.metrics.tracking import LucasKanadeTracker, Tracker, grid_points
from sma.video.frames import as_frames


@dataclass(frozen=True)
class TrajectoryError:
    """mean_error: mean distance (pixels) over objects and frames; relative_error: the same over the frame
    diagonal; final_error: the mean distance at the last frame; per_object: mean distance of each object."""

    mean_error: float
    relative_error: float
    final_error: float
    per_object: list[float]
    tracker: str

    def as_dict(self) -> dict:
        return asdict(self)


def trajectory_error(
    video: np.ndarray | torch.Tensor,
    trajectories: np.ndarray,
    sizes: np.ndarray,
    *,
    tracker: Tracker | None = None,
) -> TrajectoryError:
    """Compare the objects of `video` with the true `trajectories` (objects, f, 2) in pixels.

    `sizes` (objects,) or (objects, f) is each object's diameter in pixels (only the first
    frame's is used, to pick points on the object). The comparison is on displacements from
    the first frame, so an object that moves right but starts a little off is not penalised
    for the start.
    """
    frames = as_frames(video)
    trajectories = np.asarray(trajectories, np.float64)
    sizes = np.asarray(sizes, np.float64).reshape(len(trajectories), -1)
    if trajectories.shape[1] != len(frames):
        raise ValueError(f"the video has {len(frames)} frames, the trajectories {trajectories.shape[1]}")
    tracker = tracker or LucasKanadeTracker()
    estimated = np.stack(
        [follow_object(frames, trajectories[n, 0], sizes[n, 0] / 2, tracker) for n in range(len(trajectories))]
    )
    distances = displacement_distances(estimated, trajectories)
    return TrajectoryError(
        mean_error=float(distances.mean()),
        relative_error=float(distances.mean() / np.hypot(*frames.shape[1:3])),
        final_error=float(distances[:, -1].mean()),
        per_object=[float(d) for d in distances.mean(axis=1)],
        tracker=tracker.name,
    )


def displacement_distances(estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(objects, f) Euclidean distance between estimated and true displacements from the first frame."""
    return np.linalg.norm((estimated - estimated[:, :1]) - (truth - truth[:, :1]), axis=2)


def follow_object(frames: np.ndarray, centre: np.ndarray, radius: float, tracker: Tracker) -> np.ndarray:
    """(f, 2) estimated centre of the object at `centre` with `radius` in the first frame.

    Points on a grid over the object's disc are tracked; each frame, a similarity transform
    from their first positions to their current ones (RANSAC, OpenCV) carries the centre along.
    Once too few points remain, the last estimate is held.
    """
    grid = grid_points(15, 15, 15) / 7.0 - 1.0  # 15 x 15 grid over [-1, 1]^2
    offsets = grid[np.linalg.norm(grid, axis=1) <= 1.0] * radius
    height, width = frames.shape[1:3]
    points = (centre + offsets).astype(np.float32)
    points = points[
        (points[:, 0] >= 0) & (points[:, 0] <= width - 1) & (points[:, 1] >= 0) & (points[:, 1] <= height - 1)
    ]
    tracks = tracker.track(frames, points)
    estimate = np.empty((len(frames), 2))
    estimate[0] = centre
    for index in range(1, len(frames)):
        alive = tracks.valid[:, index]
        estimate[index] = estimate[index - 1]
        if alive.sum() >= 3:
            transform, _ = cv2.estimateAffinePartial2D(
                points[alive], tracks.positions[alive, index], method=cv2.RANSAC, ransacReprojThreshold=1.0
            )
            if transform is not None:
                estimate[index] = transform @ np.array([centre[0], centre[1], 1.0])
    return estimate
