"""Tune-A-Video: Stable Diffusion 1.x inflated with sparse-causal attention, trained on the plain noise MSE."""

from __future__ import annotations

from typing import ClassVar

import torch

from sma.backbones.inflation import Inflation
from sma.backbones.text_to_image import TextToImageModel
from sma.config import TransferConfig
from sma.methods.base import TrainedMethod
from sma.objectives import diffusion_mse


class TuneAVideo(TrainedMethod):
    """Tune-A-Video (Wu et al.): frame k attends to frames 0 and k - 1, every transformer block gains a
    temporal attention after its feed-forward; generation starts from the DDIM inversion of the reference.

    Trains, as the official configs' `trainable_modules`, every parameter of the modules whose
    name ends with `attn1.to_q`, `attn2.to_q` or `attn_temp` (not `norm_temp`).
    """

    name = "tuneavideo"
    objective_name = "mse"
    objective = staticmethod(diffusion_mse)
    inflation: ClassVar[Inflation] = Inflation(attention="sparse_causal", temporal="after_feed_forward")
    trained_modules: ClassVar[tuple[str, ...]] = ("attn1.to_q", "attn2.to_q", "attn_temp")

    @classmethod
    def load_model(cls, config: TransferConfig, device: str | torch.device = "cpu") -> TextToImageModel:
        return TextToImageModel.from_pretrained(config.model, cls.inflation, device, revision=config.revision or None)

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        """The official selection by module name, in the UNet and (ControlVideo) the ControlNet."""
        return self.train_only(
            {
                f"{prefix}.{module_name}.{name}": parameter
                for prefix, network in self.model.denoisers().items()
                for module_name, module in network.named_modules()
                if module_name.endswith(self.trained_modules)
                for name, parameter in module.named_parameters()
            }
        )
