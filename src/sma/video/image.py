"""The still image an image-to-video model starts from: checked before any model loads, then sized as the reference.

An image-to-video model reproduces its first frame from the image, so what the image cannot carry is refused
with one line rather than silently altered: transparency (what would show through is undefined) and 16-bit
channels (Pillow's RGB conversion clips them). Sizing: scaled to cover the video size and cut at the centre, as
the reference frames are (diffusers' `resize_mode="crop"`); an image under half the video size on either side
would be mostly interpolation and is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sma.video.errors import CorruptVideoError, NotAVideoError, VideoNotFoundError
from sma.video.frames import frames_to_tensor, resize_frames

ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def check_image(path: str | os.PathLike, height: int, width: int) -> Path:
    """Raise a one-line VideoError for an image `path` that cannot start a (height, width) video; returns it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VideoNotFoundError(f"no image at {path}")
    try:
        with Image.open(path) as image:
            mode, size, transparency = image.mode, image.size, "transparency" in image.info
    except UnidentifiedImageError:
        raise NotAVideoError(f"{path} is not an image Pillow can read") from None
    except OSError as error:
        raise CorruptVideoError(f"{path} is corrupt or truncated: {error}") from None
    if mode in ALPHA_MODES or transparency:
        raise NotAVideoError(f"{path} has an alpha channel: flatten it onto a background (RGB) first")
    stored = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mode in WIDE_MODES or (stored is not None and stored.dtype != np.uint8):
        raise NotAVideoError(f"{path} has 16-bit or float channels: save it with 8 bits per channel")
    if size[0] < width / 2 or size[1] < height / 2:
        raise NotAVideoError(f"{path} is {size[0]}x{size[1]}: too small for a {width}x{height} video (at least half)")
    return path


def read_image(path: str | os.PathLike, height: int, width: int) -> tuple[Image.Image, torch.Tensor]:
    """The checked image scaled to cover (height, width) and cut at the centre: as a PIL image (what an image
    encoder's processor reads) and as (1, 3, h, w) float32 pixels in [-1, 1]."""
    path = check_image(path, height, width)
    with Image.open(path) as image:
        pixels = np.array(image.convert("RGB"))  # writable: torch reads it without a copy
    sized = resize_frames(pixels[None], (height, width), "crop")
    return Image.fromarray(sized[0]), frames_to_tensor(sized)[:, :, 0]


def still_video(path: str | os.PathLike, frames: int, height: int, width: int) -> np.ndarray:
    """The picture as the model gets it, repeated: uint8 (frames, height, width, 3), a comparison's still column."""
    image, _ = read_image(path, height, width)
    return np.repeat(np.asarray(image)[None], frames, axis=0)
