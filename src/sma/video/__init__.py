"""Videos as data: reading, writing, grids and synthetic motion with ground truth. Nothing here knows of diffusion."""

from sma.video.errors import (
    CorruptVideoError,
    NoFramesError,
    NotAVideoError,
    OutputExistsError,
    TooFewFramesError,
    VideoError,
    VideoNotFoundError,
)
from sma.video.frames import frames_to_tensor, resize_frames, tensor_to_frames
from sma.video.grid import video_grid, write_grid
from sma.video.reading import VideoInfo, probe_video, read_video, read_video_tensor
from sma.video.synthetic import MovingObject, SyntheticVideo, random_synthetic_video, synthetic_video
from sma.video.writing import write_video

__all__ = [
    "CorruptVideoError",
    "MovingObject",
    "NoFramesError",
    "NotAVideoError",
    "OutputExistsError",
    "SyntheticVideo",
    "TooFewFramesError",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "frames_to_tensor",
    "probe_video",
    "random_synthetic_video",
    "read_video",
    "read_video_tensor",
    "resize_frames",
    "synthetic_video",
    "tensor_to_frames",
    "video_grid",
    "write_grid",
    "write_video",
]
