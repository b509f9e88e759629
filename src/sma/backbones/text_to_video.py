"""Text-to-video latent diffusion models with diffusers' UNet3DConditionModel (ZeroScope, ModelScope).

diffusers deprecated `TextToVideoSDPipeline`, so `sma` loads the components itself and
keeps here only what the methods need: encode a video and prompts, predict, and name the
temporal layers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from torch.utils.checkpoint import checkpoint
from transformers import CLIPTextModel, CLIPTokenizer

from sma.backbones.hub import load_component
from sma.errors import SmaError

TEMPORAL_ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v")


class _FeaturesRecorded(Exception):
    """Ends a UNet forward early: every feature asked for has been recorded."""


@dataclass
class TextToVideoModel:
    unet: UNet3DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler
    source: str

    @classmethod
    def from_pretrained(cls, source: str, device: str | torch.device = "cpu") -> TextToVideoModel:
        """Load every component in float32 from a Hub id or a local folder in diffusers layout."""
        options = {"use_safetensors": True}
        model = cls(
            unet=load_component(UNet3DConditionModel, source, "unet", **options),
            vae=load_component(AutoencoderKL, source, "vae", **options),
            text_encoder=load_component(CLIPTextModel, source, "text_encoder", **options),
            tokenizer=load_component(CLIPTokenizer, source, "tokenizer"),
            scheduler=load_component(DDIMScheduler, source, "scheduler"),
            source=source,
        )
        for module in (model.unet, model.vae, model.text_encoder):
            module.requires_grad_(False)
            module.eval()
        return model.to(device)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> TextToVideoModel:
        for module in (self.unet, self.vae, self.text_encoder):
            module.to(device, dtype)
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Pixel sizes must be multiples of this: VAE downsampling times UNet downsampling."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def check_size(self, height: int, width: int) -> None:
        multiple = self.size_multiple
        for name, value in (("height", height), ("width", width)):
            if value < multiple or value % multiple:
                nearest = max(multiple, round(value / multiple) * multiple)
                raise SmaError(
                    f"{name} {value} does not fit this model: it takes multiples of {multiple} (try {nearest})"
                )

    def latent_shape(self, frames: int, height: int, width: int, batch: int = 1) -> tuple[int, ...]:
        scale = self.vae_scale_factor
        return (batch, self.unet.config.in_channels, frames, height // scale, width // scale)

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
        """Pixels (b, 3, f, h, w) in [-1, 1] -> scaled latents (b, c, f, h/s, w/s), VAE mean.

        Frames go through the VAE `slice_size` at a time to bound memory.
        """
        batch, _, frames = video.shape[:3]
        flat = video.permute(0, 2, 1, 3, 4).flatten(0, 1).to(self.device, self.vae.dtype)
        latents = torch.cat([self.vae.encode(chunk).latent_dist.mode() for chunk in flat.split(slice_size)])
        latents = latents * self.vae.config.scaling_factor
        return latents.unflatten(0, (batch, frames)).permute(0, 2, 1, 3, 4).float()

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
        """Scaled latents (b, c, f, h, w) -> pixels (b, 3, f, H, W) in [-1, 1], float32 on the CPU."""
        batch, _, frames = latents.shape[:3]
        flat = latents.permute(0, 2, 1, 3, 4).flatten(0, 1) / self.vae.config.scaling_factor
        flat = flat.to(self.device, self.vae.dtype)
        pixels = torch.cat([self.vae.decode(chunk).sample for chunk in flat.split(slice_size)])
        return pixels.unflatten(0, (batch, frames)).permute(0, 2, 1, 3, 4).float().clamp(-1, 1).cpu()

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(self.device)).last_hidden_state

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

    @contextmanager
    def capture_features(self, module_names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
        """Record the outputs of named UNet modules during forwards inside the block."""
        modules = dict(self.unet.named_modules())
        missing = [name for name in module_names if name not in modules]
        if missing:
            raise SmaError(f"the UNet has no module named {', '.join(missing)}")
        features: dict[str, torch.Tensor] = {}

        def recorder(name):
            def hook(_module, _inputs, output):
                features[name] = output[0] if isinstance(output, tuple) else output

            return hook

        handles = [modules[name].register_forward_hook(recorder(name)) for name in module_names]
        try:
            yield features
        finally:
            for handle in handles:
                handle.remove()

    def features(
        self, latents: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor, module_names: list[str]
    ) -> dict[str, torch.Tensor]:
        """Outputs of the named UNet modules, from a forward that stops once they have all run.

        The layers after them are never run, so backward keeps nothing of them. UNet3D folds
        frames into the batch: a block's output is (b * f, c, h, w).
        """
        modules = dict(self.unet.named_modules())
        with self.capture_features(module_names) as features:

            def stop_when_complete(_module, _inputs, _output):
                if len(features) == len(set(module_names)):
                    raise _FeaturesRecorded

            # registered after the recorders, so each module records its output before this runs
            handles = [modules[name].register_forward_hook(stop_when_complete) for name in set(module_names)]
            try:
                self.predict(latents, timesteps, text_embeddings)
            except _FeaturesRecorded:
                pass
            finally:
                for handle in handles:
                    handle.remove()
        return features
