"""Stable Diffusion 1.x inflated to video (Tune-A-Video, ControlVideo), with an optional ControlNet.

The image model's weights are loaded unchanged (any SD-1.x-layout model: the original, a
DreamBooth fine-tune, a local folder); the method's `sma.backbones.inflation.Inflation` turns
it into a video model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from sma.backbones.hub import load_component
from sma.backbones.inflation import FrameCount, Inflation
from sma.backbones.latent_video import LatentVideoModel, load_text_and_vae
from sma.errors import SmaError


def fold_frames(video: torch.Tensor) -> torch.Tensor:
    """(b, c, f, h, w) -> (b * f, c, h, w), frames of one video next to each other."""
    return video.permute(0, 2, 1, 3, 4).flatten(0, 1)


def unfold_frames(images: torch.Tensor, frames: int) -> torch.Tensor:
    """(b * f, c, h, w) -> (b, c, f, h, w)."""
    return images.unflatten(0, (-1, frames)).permute(0, 2, 1, 3, 4)


@dataclass
class TextToImageModel(LatentVideoModel):
    """An SD-1.x UNet run frame by frame, with cross-frame attention and temporal attention.

    With a ControlNet, `control` holds the conditioning frames (b, 3, f, H, W) in [0, 1]
    (depth maps) that every prediction is conditioned on.
    """

    unet: UNet2DConditionModel
    controlnet: ControlNetModel | None = None
    control: torch.Tensor | None = None
    control_scale: float = 1.0
    count: FrameCount = field(default_factory=FrameCount)

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        inflation: Inflation,
        device: str | torch.device = "cpu",
        controlnet: str | None = None,
        revision: str | None = None,
        controlnet_revision: str | None = None,
    ) -> TextToImageModel:
        """Load an SD-1.x model (and a ControlNet) in float32, inflate them as the method does, freeze them.

        `revision` and `controlnet_revision` pick a branch, tag or commit of Hub ids.
        """
        unet = load_component(UNet2DConditionModel, source, "unet", revision)
        model = cls(unet=unet, **load_text_and_vae(source, revision))
        if controlnet is not None:
            model.controlnet = load_component(ControlNetModel, controlnet, "", controlnet_revision)
        inflation.apply(model.unet, model.controlnet, model.count)
        return model.freeze().to(device)

    def denoisers(self) -> dict[str, torch.nn.Module]:
        """The inflated networks by name: the UNet, and the ControlNet when there is one."""
        return {"unet": self.unet} | ({"controlnet": self.controlnet} if self.controlnet is not None else {})

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        frames = latents.shape[2]
        self.count.frames = frames
        sample = fold_frames(latents)
        timesteps = timesteps.expand(latents.shape[0]).repeat_interleave(frames)
        text = text_embeddings.to(latents.dtype).repeat_interleave(frames, dim=0)
        residuals = {}
        if self.controlnet is not None:
            if self.control is None:
                raise SmaError("this model has a ControlNet: set its control frames (depth maps) before predicting")
            control = self.control.to(latents.device, latents.dtype)
            control = fold_frames(control.expand(latents.shape[0], -1, -1, -1, -1))
            down, mid = self.controlnet(
                sample,
                timesteps,
                text,
                controlnet_cond=control,
                conditioning_scale=self.control_scale,
                return_dict=False,
            )
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        output = self.unet(sample, timesteps, encoder_hidden_states=text, **residuals).sample
        return unfold_frames(output, frames)

    def enable_gradient_checkpointing(self) -> None:
        """diffusers' own checkpointing of the 2D blocks, in the UNet and the ControlNet."""
        for network in self.denoisers().values():
            network.enable_gradient_checkpointing()
