"""Frames in memory: resizing to a target size, and conversion between uint8 frames and tensors.

uint8 frames are numpy arrays (f, h, w, 3), RGB. Tensors are float (b, c, f, h, w) in [-1, 1],
the layout the diffusion side and the SMA loss use.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

FITS = ("crop", "pad", "stretch")


def resize_frames(frames: np.ndarray, size: tuple[int, int], fit: str = "crop") -> np.ndarray:
    """Resize (f, h, w, 3) frames to `size` = (height, width).

    `crop` scales to cover the target and cuts the centre; `pad` scales to fit inside and
    fills the borders with black; `stretch` ignores the aspect ratio.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, not {fit!r}")
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, not {size}")
    source_height, source_width = frames.shape[1:3]
    if (source_height, source_width) == (height, width):
        return frames
    if fit == "stretch":
        return np.stack([_resize(frame, height, width) for frame in frames])
    if fit == "crop":  # cover the target, then cut the centre
        scale = max(height / source_height, width / source_width)
        scaled_height, scaled_width = max(height, round(source_height * scale)), max(width, round(source_width * scale))
    else:  # fit inside the target, then pad
        scale = min(height / source_height, width / source_width)
        scaled_height = min(height, max(1, round(source_height * scale)))
        scaled_width = min(width, max(1, round(source_width * scale)))
    if fit == "crop":  # frame by frame: one scaled frame in memory, not all (a wide target scales a frame up a lot)
        top, left = (scaled_height - height) // 2, (scaled_width - width) // 2
        return np.stack(
            [_resize(frame, scaled_height, scaled_width)[top : top + height, left : left + width] for frame in frames]
        )
    scaled = np.stack([_resize(frame, scaled_height, scaled_width) for frame in frames])
    padded = np.zeros((len(frames), height, width, 3), dtype=np.uint8)
    top, left = (height - scaled_height) // 2, (width - scaled_width) // 2
    padded[:, top : top + scaled_height, left : left + scaled_width] = scaled
    return padded


def _resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    shrinking = height * width < frame.shape[0] * frame.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interpolation)


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (f, h, w, 3) -> float32 (1, 3, f, h, w) in [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).unsqueeze(0)
    return tensor.float() / 127.5 - 1.0


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """float (1, 3, f, h, w) or (3, f, h, w) in [-1, 1] -> uint8 (f, h, w, 3), clamped and rounded."""
    if video.ndim == 5:
        if video.shape[0] != 1:
            raise ValueError(f"expected one video, got a batch of {video.shape[0]}; index it first")
        video = video[0]
    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"expected a (1, 3, f, h, w) or (3, f, h, w) tensor, got shape {tuple(video.shape)}")
    scaled = ((video.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255)
    return scaled.to(torch.uint8).permute(1, 2, 3, 0).contiguous().numpy()  # encoders read memory in order


def as_frames(video: np.ndarray | torch.Tensor) -> np.ndarray:
    """Accept uint8 frames (f, h, w, 3) or a [-1, 1] tensor; return uint8 frames."""
    if isinstance(video, torch.Tensor):
        return tensor_to_frames(video)
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (f, h, w, 3), got {video.shape}")
    if video.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {video.dtype}; pass a [-1, 1] tensor for float videos")
    return video
