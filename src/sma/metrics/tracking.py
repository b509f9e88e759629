"""Point tracking for the motion metrics: a pluggable tracker, and pyramidal Lucas-Kanade as the offline default.

A tracker is any object with a `name` and `track(frames, points) -> Tracks`; the metrics report
the name, so numbers from different trackers are never confused. DMT tracks with CoTracker,
which needs downloaded weights; Lucas-Kanade needs nothing but OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


@dataclass(frozen=True)
class Tracks:
    """positions: (n, f, 2) float (x, y) in pixels; valid: (n, f) bool, False from the frame a point is lost."""

    positions: np.ndarray
    valid: np.ndarray


class Tracker(Protocol):
    name: str

    def track(self, frames: np.ndarray, points: np.ndarray) -> Tracks:
        """Follow `points` (n, 2), given in the first of the uint8 `frames` (f, h, w, 3), through the clip."""
        ...


@dataclass(frozen=True)
class LucasKanadeTracker:
    """Pyramidal Lucas-Kanade (OpenCV) from frame to frame, with a forward-backward check.

    A point is lost from the first step where OpenCV fails, tracking back lands more than
    `max_error` pixels from where it started, or it leaves the frame.
    """

    window: int = 15
    levels: int = 3
    max_error: float = 0.5

    @property
    def name(self) -> str:
        return (
            f"lucas-kanade (opencv, window {self.window}, {self.levels} levels, forward-backward {self.max_error} px)"
        )

    def track(self, frames: np.ndarray, points: np.ndarray) -> Tracks:
        height, width = frames.shape[1:3]
        grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
        settings = dict(
            winSize=(self.window, self.window),
            maxLevel=self.levels,
            criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
        )
        positions = np.zeros((len(points), len(frames), 2), np.float32)
        valid = np.zeros((len(points), len(frames)), bool)
        positions[:, 0] = points
        valid[:, 0] = True
        for step in range(1, len(frames)):
            alive = np.flatnonzero(valid[:, step - 1])
            if alive.size == 0:
                break
            before = positions[alive, step - 1].reshape(-1, 1, 2)
            after, found, _ = cv2.calcOpticalFlowPyrLK(grey[step - 1], grey[step], before, None, **settings)
            back, found_back, _ = cv2.calcOpticalFlowPyrLK(grey[step], grey[step - 1], after, None, **settings)
            after, back = after.reshape(-1, 2), back.reshape(-1, 2)
            consistent = np.linalg.norm(back - before.reshape(-1, 2), axis=1) <= self.max_error
            found_both = found.ravel().astype(bool) & found_back.ravel().astype(bool)
            kept = found_both & inside_frame(after, height, width) & consistent
            positions[alive, step] = after
            valid[alive, step] = kept
        return Tracks(positions=positions, valid=valid)


def inside_frame(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """(n,) whether each (x, y) point lies in a height x width frame, pixel centres from 0 to size - 1."""
    return (points[:, 0] >= 0) & (points[:, 0] <= width - 1) & (points[:, 1] >= 0) & (points[:, 1] <= height - 1)


def grid_points(height: int, width: int, grid_size: int) -> np.ndarray:
    """(grid_size * grid_size, 2) points (x, y) at the centres of a grid_size x grid_size tiling of the frame."""
    xs = (np.arange(grid_size) + 0.5) * width / grid_size - 0.5
    ys = (np.arange(grid_size) + 0.5) * height / grid_size - 0.5
    x, y = np.meshgrid(xs, ys)
    return np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float32)
