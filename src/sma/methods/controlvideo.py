"""ControlVideo: Stable Diffusion 1.x + ControlNet-Depth inflated with key-frame attention, plain noise MSE."""

from __future__ import annotations

import torch

from sma.backbones.depth import estimate_depth, read_depth_video
from sma.backbones.inflation import TEMPORAL_LAYER
from sma.backbones.text_to_image import TextToImageModel
from sma.config import TransferConfig
from sma.methods.tuneavideo import TuneAVideo

NORMS_AND_CONVOLUTIONS = (torch.nn.Conv2d, torch.nn.GroupNorm, torch.nn.LayerNorm)


class ControlVideo(TuneAVideo):
    """ControlVideo (Zhao et al.): every frame attends to frame 0; each prediction is conditioned on the
    depth of the reference's frames through the ControlNet.

    Trains, in the UNet and the ControlNet, `attn1.to_out`, the temporal layers and every
    normalisation and 2D convolution layer (DESIGN.md §2).
    """

    name = "controlvideo"

    @classmethod
    def load_model(cls, config: TransferConfig, device: str | torch.device = "cpu") -> TextToImageModel:
        model = TextToImageModel.from_pretrained(
            config.model, device=device, attention="key_frame", controlnet=config.control.controlnet
        )
        model.control_scale = config.control.scale
        return model

    def is_trained(self, name: str, module: torch.nn.Module) -> bool:
        return TEMPORAL_LAYER in name or name.endswith("attn1.to_out.0") or isinstance(module, NORMS_AND_CONVOLUTIONS)

    def condition_on(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """Depth maps of the reference: given as a video (`control.video`) or estimated (`control.depth_model`)."""
        control = self.config.control
        if control.video:
            return {"depth": read_depth_video(control.video, self.config.video)}
        return {"depth": estimate_depth(control.depth_model, clip)}

    def set_conditions(self, conditions: dict[str, torch.Tensor]) -> None:
        self.model.control = conditions["depth"]
