"""Appearance checks for synthetic scenes: is the prompted colour on screen?"""

from __future__ import annotations

import numpy as np
import torch

from sma.video.frames import as_frames


def colour_fraction(video: np.ndarray | torch.Tensor, colour: tuple[int, int, int], tolerance: float = 60.0) -> float:
    """Share of pixels within `tolerance` (Euclidean, 0..255 RGB) of `colour`, over all frames."""
    frames = as_frames(video).astype(np.float32)
    distance = np.linalg.norm(frames - np.asarray(colour, np.float32), axis=-1)
    return float((distance <= tolerance).mean())
