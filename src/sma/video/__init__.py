"""Videos as data: reading, writing, grids and synthetic motion with ground truth. Nothing here knows of diffusion.

The names below load their module on first use (PEP 562), so that a light submodule (`sma.video.atomic`,
`sma.video.errors`) does not bring PyAV, OpenCV and torch with it.
"""

import importlib

_MODULES = {
    "sma.video.errors": (
        "CorruptVideoError",
        "NoFramesError",
        "NotAVideoError",
        "OutputExistsError",
        "TooFewFramesError",
        "VideoError",
        "VideoNotFoundError",
        "VideoTooLargeError",
    ),
    "sma.video.frames": ("frames_to_tensor", "resize_frames", "tensor_to_frames"),
    "sma.video.grid": ("video_grid", "write_grid"),
    "sma.video.reading": ("VideoInfo", "probe_video", "read_video", "read_video_tensor"),
    "sma.video.synthetic": ("MovingObject", "SyntheticVideo", "random_synthetic_video", "synthetic_video"),
    "sma.video.writing": ("write_video",),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sma.video' has no attribute {name!r}")


__all__ = sorted(_LAZY)
