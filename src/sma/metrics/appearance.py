"""Appearance checks for synthetic scenes: are the prompted colour and shape on screen?"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from sma.video.frames import as_frames


def colour_fraction(video: np.ndarray | torch.Tensor, colour: tuple[int, int, int], tolerance: float = 60.0) -> float:
    """Share of pixels within `tolerance` (Euclidean, 0..255 RGB) of `colour`, over all frames."""
    return float(colour_mask(as_frames(video), colour, tolerance).mean())


def colour_mask(frame: np.ndarray, colour: tuple[int, int, int], tolerance: float = 60.0) -> np.ndarray:
    distance = np.linalg.norm(frame.astype(np.float32) - np.asarray(colour, np.float32), axis=-1)
    return distance <= tolerance


def shape_of(mask: np.ndarray, min_area: float = 12.0) -> str | None:
    """Name the largest blob of a mask: circle, square, triangle or star (None when there is none).

    Stars are the only concave shape (low solidity); the convex ones differ in how much of
    their smallest enclosing circle they fill, whatever their size and angle.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(contour)
    if area < min_area:
        return None
    solidity = area / max(cv2.contourArea(cv2.convexHull(contour)), 1e-9)
    if solidity < 0.8:
        return "star"
    _, radius = cv2.minEnclosingCircle(contour)
    fill = area / (np.pi * radius**2)  # disc 1, square 2/pi = 0.64, equilateral triangle 0.41
    if fill > 0.78:
        return "circle"
    return "square" if fill > 0.52 else "triangle"


def appearance_accuracy(
    video: np.ndarray | torch.Tensor,
    colour: tuple[int, int, int],
    shape: str,
    avoid_colour: tuple[int, int, int] | None = None,
    tolerance: float = 60.0,
) -> float:
    """Share of frames whose largest blob of `colour` has the prompted `shape` and that show
    more of `colour` than of `avoid_colour` (the reference's, which should be gone)."""
    frames = as_frames(video)
    hits = 0
    for frame in frames:
        mask = colour_mask(frame, colour, tolerance)
        right_shape = shape_of(mask) == shape
        if avoid_colour is not None:
            right_shape = right_shape and mask.sum() > colour_mask(frame, avoid_colour, tolerance).sum()
        hits += right_shape
    return hits / len(frames)
