"""Text-to-video latent diffusion models with diffusers' UNet3DConditionModel (ZeroScope, ModelScope).

diffusers deprecated `TextToVideoSDPipeline`, so `sma` loads the components itself and
keeps here only what the methods need: encode a video and prompts, predict, and name the
temporal layers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from diffusers import UNet3DConditionModel
from torch.utils.checkpoint import checkpoint

from sma.backbones.hub import load_component
from sma.backbones.latent_video import LatentVideoModel, load_text_and_vae

TEMPORAL_ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v")


@dataclass
class TextToVideoModel(LatentVideoModel):
    unet: UNet3DConditionModel

    @classmethod
    def from_pretrained(cls, source: str, device: str | torch.device = "cpu") -> TextToVideoModel:
        """Load every component in float32 from a Hub id or a local folder in diffusers layout."""
        unet = load_component(UNet3DConditionModel, source, "unet", use_safetensors=True)
        return cls(unet=unet, **load_text_and_vae(source)).freeze().to(device)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        return self.unet(latents, timesteps, encoder_hidden_states=text_embeddings.to(latents.dtype)).sample

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each UNet block during backward instead of keeping its activations.

        diffusers' UNet3DConditionModel does not support `enable_gradient_checkpointing`
        (its 3D blocks never checkpoint), so each down, mid and up block is wrapped here.
        """
        for block in [*self.unet.down_blocks, self.unet.mid_block, *self.unet.up_blocks]:
            block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)

    def temporal_attention_projections(self) -> dict[str, torch.nn.Linear]:
        """The q/k/v projections of every temporal attention layer (VMC's trainable set)."""
        return {
            name: module
            for name, module in self.unet.named_modules()
            if "temp_attentions" in name and name.endswith(TEMPORAL_ATTENTION_PROJECTIONS)
        }
