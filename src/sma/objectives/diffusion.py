"""Plain denoising objective of Tune-A-Video and ControlVideo."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def diffusion_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((prediction - target)^2), computed in float32 whatever the autocast dtype."""
    return F.mse_loss(prediction.float(), target.float())
