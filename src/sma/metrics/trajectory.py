"""Trajectory error against ground truth: how far a video's objects stray from where they should go.

Used with synthetic clips, whose true object centres are known. Two ways to find an object in
the video being scored:

- `trajectory_error` follows it by tracking points on it from its true position in the first
  frame and fitting a similarity transform (shift, rotation, scale) to them frame by frame, so
  spinning or growing shapes still give their centre. It needs no colour, but on a textured
  background under a moving camera the background's points pull the fit (up to 13 px on the
  hard world's own clips).
- `colour_trajectory_error` takes the centroid of the largest blob of each object's colour,
  frame by frame: exact on flat-coloured shapes whatever the background (under 0.6 px on the
  hard world's clips), for outputs whose target names each object's colour. Object n of the
  video is the one in `colours[n]`, scored against the reference's object n: matching by
  colour, in the order the target lists them, rather than by assignment (Hungarian, on
  tracks), which would pair an object with whichever reference path it happens to follow and
  so forgive an output that swaps two objects' motions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from sma.metrics.appearance import colour_mask
from sma.metrics.tracking import LucasKanadeTracker, Tracker, grid_points
from sma.video.frames import as_frames


@dataclass(frozen=True)
class TrajectoryError:
    """mean_error: mean distance (pixels) over objects and frames; relative_error: the same over the frame
    diagonal; final_error: the mean distance at the last frame; per_object: mean distance of each object;
    found: share of (object, frame) pairs where the object was found (colour centroids; tracking: 1)."""

    mean_error: float
    relative_error: float
    final_error: float
    per_object: list[float]
    tracker: str
    found: float = 1.0

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
    return _scored(estimated, trajectories, frames.shape[1:3], tracker.name)


def colour_trajectory_error(
    video: np.ndarray | torch.Tensor,
    trajectories: np.ndarray,
    colours: Sequence[tuple[int, int, int]],
    *,
    tolerance: float = 60.0,
    min_area: int = 4,
) -> TrajectoryError:
    """Compare the objects of `video`, found by colour (object n in `colours[n]`), with the true `trajectories`
    (objects, f, 2) in pixels, on displacements from the first frame.

    Each frame, object n is the centroid of the largest connected blob of pixels within `tolerance`
    (Euclidean, 0..255 RGB) of `colours[n]`, if it has at least `min_area` pixels. Frames where it
    is missing take the nearest frame's position where it was found; an object never found
    stands still (it scores the true path's own displacement).
    """
    frames = as_frames(video)
    trajectories = np.asarray(trajectories, np.float64)
    if trajectories.shape[1] != len(frames) or len(colours) != len(trajectories):
        raise ValueError(
            f"the video has {len(frames)} frames and {len(colours)} colours, "
            f"the trajectories {trajectories.shape[1]} frames of {len(trajectories)} objects"
        )
    estimated = np.zeros_like(trajectories)
    found = np.zeros(trajectories.shape[:2], bool)
    for number, colour in enumerate(colours):
        for index, centre in enumerate(colour_centres(frames, colour, tolerance, min_area)):
            if centre is not None:
                estimated[number, index], found[number, index] = centre, True
        if not found[number].any():
            estimated[number] = trajectories[number, 0]
            continue
        seen = np.flatnonzero(found[number])
        nearest = seen[np.abs(np.arange(len(frames))[:, None] - seen[None]).argmin(axis=1)]
        estimated[number] = estimated[number, nearest]
    name = f"largest blob of each colour (tolerance {tolerance:g})"
    return _scored(estimated, trajectories, frames.shape[1:3], name, float(found.mean()))


def colour_centres(
    frames: np.ndarray, colour: tuple[int, int, int], tolerance: float = 60.0, min_area: int = 4
) -> list[np.ndarray | None]:
    """Per frame of uint8 (f, h, w, 3) `frames`, the (x, y) centre of the largest blob of `colour`, or None."""
    return [blob_centre(colour_mask(frame, colour, tolerance), min_area) for frame in frames]


def blob_centre(mask: np.ndarray, min_area: int = 4) -> np.ndarray | None:
    """(x, y) centroid of the largest 8-connected blob of a boolean mask, or None when it is smaller than `min_area`."""
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return centroids[largest] if stats[largest, cv2.CC_STAT_AREA] >= min_area else None


def _scored(
    estimated: np.ndarray, truth: np.ndarray, size: tuple[int, int], tracker: str, found: float = 1.0
) -> TrajectoryError:
    distances = displacement_distances(estimated, truth)
    return TrajectoryError(
        mean_error=float(distances.mean()),
        relative_error=float(distances.mean() / np.hypot(*size)),
        final_error=float(distances[:, -1].mean()),
        per_object=[float(d) for d in distances.mean(axis=1)],
        tracker=tracker,
        found=found,
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
