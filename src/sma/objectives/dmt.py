"""DMT's space-time feature loss on UNet features (zero-shot motion transfer)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dmt_feature_loss(reference_features: torch.Tensor, output_features: torch.Tensor) -> torch.Tensor:
    """mean_i (1 - mean_j cos(f[j] - f[i], f'[j] - f'[i])) over per-frame feature vectors.

    Features are (b, c, f, h, w); each frame is averaged over (h, w) into a vector f[n].
    Pairs j = i give zero vectors whose cosine is 0, as in the DMT code. The reference is
    fixed: gradients flow only to the output features.
    """
    reference = reference_features.float().detach().mean(dim=(3, 4))  # (b, c, f)
    output = output_features.float().mean(dim=(3, 4))
    reference_differences = reference[:, :, None, :] - reference[:, :, :, None]  # [.., i, j] = f[j] - f[i]
    output_differences = output[:, :, None, :] - output[:, :, :, None]
    cosines = F.cosine_similarity(output_differences, reference_differences, dim=1)  # (b, i, j)
    return (1 - cosines.mean(dim=2)).mean()
