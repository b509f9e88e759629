"""MotionDirector's dual-path objectives: appearance on one frame, motion on the clip."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def motiondirector_spatial_loss(predicted_noise: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """MSE of the noise prediction on the single frame the spatial path sees."""
    return F.mse_loss(predicted_noise.float(), noise.float())


def motiondirector_temporal_loss(predicted_noise: torch.Tensor, noise: torch.Tensor, anchor: int) -> torch.Tensor:
    """MSE on the clip plus the appearance-debiased term for one anchor frame i:

    MSE(eps_hat, eps) + MSE(sqrt(2) eps_hat - eps_hat[i], sqrt(2) eps - eps[i]).
    Subtracting the anchor removes what all frames share (appearance); sqrt(2) keeps the
    noise variance of the debiased target at that of eps.
    """
    predicted = predicted_noise.float()
    target = noise.float()
    frames = predicted.shape[2]
    if not -frames <= anchor < frames:
        raise ValueError(f"anchor frame {anchor} is outside the clip's {frames} frames")
    debiased_predicted = math.sqrt(2) * predicted - predicted.select(2, anchor).unsqueeze(2)
    debiased_target = math.sqrt(2) * target - target.select(2, anchor).unsqueeze(2)
    return F.mse_loss(predicted, target) + F.mse_loss(debiased_predicted, debiased_target)
