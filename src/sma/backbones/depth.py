"""Per-frame depth maps for ControlNet-Depth: read from a video of depth maps, or estimated with transformers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from sma.backbones.hub import ModelNotFoundError, first_line, local_folder, no_hub_kernels
from sma.config import VideoConfig
from sma.video import read_video_tensor


def read_depth_video(path: str | Path, video: VideoConfig) -> torch.Tensor:
    """Depth maps (a video or a frame folder) as (1, 3, f, h, w) in [0, 1], framed like the reference."""
    frames = read_video_tensor(
        path, video.frames, stride=video.stride, start=video.start, size=(video.height, video.width)
    )
    return (frames + 1) / 2


def estimate_depth(model: str, clip: torch.Tensor, revision: str | None = None) -> torch.Tensor:
    """Depth of each frame of `clip` (1, 3, f, h, w) in [-1, 1] by a transformers depth-estimation model
    (e.g. Depth Anything, at `revision` of a Hub id), as (1, 3, f, h, w) in [0, 1], near is bright, each frame
    scaled to its maximum (the transformers pipeline's `depth` image, the input ControlNet-Depth was trained on).
    transformers prefers safetensors and reads .bin with torch.load(weights_only=True)."""
    from PIL import Image
    from transformers import PreTrainedModel, pipeline

    local_folder(model, "a folder holding a transformers depth-estimation model")
    try:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        estimator = pipeline(
            "depth-estimation",
            model=model,
            device=device,
            revision=revision,
            dtype=torch.float32,
            model_kwargs=no_hub_kernels(PreTrainedModel),
        )
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        raise ModelNotFoundError(
            f"cannot load the depth-estimation model {model!r} ({first_line(error)}): pass a local folder "
            "or a Hub id of a transformers depth model, or give depth maps in `controlvideo.video`"
        ) from error
    pixels = ((clip[0].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    results = estimator([Image.fromarray(frame) for frame in pixels])
    depth = torch.from_numpy(np.stack([np.asarray(result["depth"], dtype=np.float32) / 255 for result in results]))
    return depth[None, None].expand(1, 3, -1, -1, -1).contiguous()
