"""Writing videos: mp4 (H.264, yuv420p) through PyAV, gif through Pillow, png frames to a folder.

Every write is atomic and refuses to replace an existing output unless asked.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from sma.video.atomic import atomic_output
from sma.video.errors import VideoError
from sma.video.frames import as_frames

H264_SUFFIXES = (".mp4", ".mov", ".mkv")
GIF_FRAME_COMMENT = "sma frame duration"


def write_video(
    path: str | os.PathLike,
    video: np.ndarray | torch.Tensor,
    fps: float = 8,
    *,
    overwrite: bool = False,
    quality: int = 17,
) -> Path:
    """Write uint8 frames (f, h, w, 3) or a [-1, 1] tensor (1, 3, f, h, w) and return the path.

    The suffix picks the format: .mp4/.mov/.mkv (H.264, yuv420p, constant quality `quality`
    as x264's crf, lower is better), .gif, or no suffix for a folder of png frames
    (frame_0000.png, ...). Odd sizes are padded to even for H.264 by repeating the last row
    and column. The same frames give the same bytes: x264 runs one thread (more vary the stream run to run) and
    without its macroblock tree (mbtree), which encoded the same frames now and then to another stream, decoded up to
    15 levels apart: it reads uninitialised memory on frames an odd count of macroblocks wide (16, 48, 80 px; valgrind)
    and varied on 64 px frames too (10-50% of encodes on an AVX-512 CPU, none with its AVX2 code).
    """
    frames = as_frames(video)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*H264_SUFFIXES, ".gif", ""):
        raise VideoError(
            f"cannot write {path}: use .mp4, .mov, .mkv, .gif, or a folder name without a suffix for png frames"
        )
    if fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    with atomic_output(path, overwrite) as temporary:
        if suffix == ".gif":
            _write_gif(temporary, frames, fps)
        elif suffix == "":
            _write_png_folder(temporary, frames)
        else:
            _write_h264(temporary, frames, fps, quality, container_format=suffix.lstrip(".").replace("mkv", "matroska"))
    return path


def _write_h264(path: Path, frames: np.ndarray, fps: float, quality: int, container_format: str) -> None:
    height, width = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=_rate(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # One thread and no macroblock tree: either varies the stream from run to run (see the docstring).
        stream.options = {"crf": str(quality), "threads": "1", "x264-params": "mbtree=0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _rate(fps: float) -> Fraction:
    """PyAV wants a rational frame rate; 23.976 and friends become exact fractions."""
    return Fraction(fps).limit_denominator(1001)


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    images = [Image.fromarray(frame) for frame in frames]
    duration = max(2, round(100 / fps)) * 10  # gif durations are whole centiseconds
    # Pillow merges identical consecutive frames into one longer frame; the comment lets readers split them again.
    comment = f"{GIF_FRAME_COMMENT} {duration} ms"
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0, comment=comment
    )


def _write_png_folder(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir()
    digits = max(4, len(str(len(frames) - 1)))
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{index:0{digits}d}.png")
