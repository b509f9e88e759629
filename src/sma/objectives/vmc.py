"""VMC's motion distillation objective: align the frame residuals of the noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sma.motion import frame_residuals


def vmc_loss(predicted_noise: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """1 - cos(|d eps_hat|, |d eps|), the cosine taken along the frame axis, averaged.

    Videos are (b, c, f, h, w); |d eps| are absolute frame residuals, as in the VMC code,
    so every (b, c, h, w) position contributes one cosine over its f - 1 residuals.
    """
    predicted = frame_residuals(predicted_noise.float(), absolute=True)
    reference = frame_residuals(noise.float(), absolute=True)
    return 1 - F.cosine_similarity(predicted, reference, dim=2).mean()
