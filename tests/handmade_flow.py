"""VideoFlow objects with chosen flows, to test the flow metrics against hand-computed values."""

import numpy as np

from sma.metrics import VideoFlow


def handmade(forward, backward=None, size=None):
    """A VideoFlow with chosen flows (f-1, h, w, 2); the frames are grey, only their size matters."""
    forward = np.asarray(forward, np.float32)
    height, width = forward.shape[1:3]
    backward = -forward if backward is None else np.asarray(backward, np.float32)
    frames = np.full((len(forward) + 1, height, width, 3), 128, np.uint8)
    return VideoFlow(frames, forward, backward, size or (height, width), max(height, width), "medium")
