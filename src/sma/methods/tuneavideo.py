"""Tune-A-Video: Stable Diffusion 1.x inflated with sparse-causal attention, trained on the plain noise MSE."""

from __future__ import annotations

import re

import torch

from sma.backbones.inflation import TEMPORAL_LAYER
from sma.backbones.text_to_image import TextToImageModel
from sma.config import TransferConfig
from sma.methods.base import TrainedMethod
from sma.objectives import diffusion_mse

QUERY_PROJECTIONS = re.compile(r"\.attn[12]\.to_q$")


class TuneAVideo(TrainedMethod):
    """Tune-A-Video (Wu et al.): trains the queries of spatial self- and cross-attention and the temporal layers.

    Frame k attends to frames 0 and k - 1; generation starts from the DDIM inversion of the reference.
    """

    name = "tuneavideo"
    objective_name = "mse"
    objective = staticmethod(diffusion_mse)

    @classmethod
    def load_model(cls, config: TransferConfig, device: str | torch.device = "cpu") -> TextToImageModel:
        return TextToImageModel.from_pretrained(
            config.model, device=device, attention="sparse_causal", revision=config.revision or None
        )

    def is_trained(self, name: str, module: torch.nn.Module) -> bool:
        """Whether the parameters of the named module (`unet.<module name>`) are trained."""
        return TEMPORAL_LAYER in name or QUERY_PROJECTIONS.search(name) is not None

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        return self.train_only(
            {
                f"{prefix}.{module_name}.{name}": parameter
                for prefix, network in self.model.denoisers().items()
                for module_name, module in network.named_modules()
                if self.is_trained(f"{prefix}.{module_name}", module)
                for name, parameter in module.named_parameters(recurse=False)
            }
        )
