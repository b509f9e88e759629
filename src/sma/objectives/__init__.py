"""Base objectives of the motion-distillation methods SMA plugs into (docs/methods.md), and how SMA joins them."""

from sma.objectives.diffusion import diffusion_mse
from sma.objectives.dmt import dmt_feature_loss
from sma.objectives.motiondirector import motiondirector_spatial_loss, motiondirector_temporal_loss
from sma.objectives.total import weighted_terms, with_sma
from sma.objectives.vmc import vmc_loss

__all__ = [
    "diffusion_mse",
    "dmt_feature_loss",
    "motiondirector_spatial_loss",
    "motiondirector_temporal_loss",
    "vmc_loss",
    "weighted_terms",
    "with_sma",
]
