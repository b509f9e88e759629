"""Wan image-to-video, as diffusers' WanImageToVideoPipeline runs it, in its two layouts.

- Wan 2.2 TI2V-5B (Wan-AI/Wan2.2-TI2V-5B-Diffusers; model_index.json `expand_timesteps: true`): latent frame 0 of
  the transformer's input is the image's latent at every step, and its tokens get timestep 0 (the timestep is
  given per token). The same model samples text to video (WanPipeline) when no image is given: every token then
  has the step's timestep. Its VAE (Wan 2.2: 16x in space, 48 channels) is an `AutoencoderKLWan` too.
- Wan 2.1 I2V-14B (Wan-AI/Wan2.1-I2V-14B-480P-Diffusers; `WanImageToVideoPipeline`): the input is the noisy
  latents with, along the channels, a mask of the given frames (4 channels: the first latent frame's 4 video
  frames are given) and the latents of the image followed by black frames (`in_channels` 36 = 16 + 4 + 16); CLIP
  ViT-H's penultimate states of the image join the text in the cross-attention. Wan 2.1 FLF2V-14B
  (Wan-AI/Wan2.1-FLF2V-14B-720P-Diffusers; its image embedder has positions for two pictures, `pos_embed_seq_len`) is
  given the last frame too, as the pipeline's `last_image`: the black frames end on it, the mask gives it, and CLIP's
  states of both pictures go in.
- Wan 2.2 I2V-A14B (Wan-AI/Wan2.2-I2V-A14B-Diffusers): I2V-14B's input for two experts (backbones/wan.py), without
  a CLIP encoder (the transformers have no `image_dim`: the image enters through the input alone).

The condition of the current image is the model's `condition` (set for a block with `conditioned_on`), so every
sampler and loss written for `predict(latents, t, text)` runs unchanged. Sampled latents get the image's own latent
as frame 0 (`with_first_frame`): diffusers does so for TI2V; for I2V-14B it is sma's addition, so that the first
frame of every output is the image as the VAE reproduces it (latent frame 0 of the causal VAE is the image alone).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import CLIPImageProcessorPil, CLIPVisionModel

from sma.backbones.hub import load_component, model_index
from sma.backbones.wan import WanModel
from sma.errors import SmaError

PIPELINE = "WanImageToVideoPipeline"
MASK_CHANNELS = 4  # Wan 2.1 I2V: one mask channel per video frame of a latent frame


def is_image_to_video(index: dict) -> bool:
    """Whether a model_index.json is Wan image to video: WanImageToVideoPipeline, or TI2V-5B's WanPipeline with
    `expand_timesteps`."""
    return index.get("_class_name") == PIPELINE or bool(index.get("expand_timesteps"))


def load_image_encoder(source: str, revision: str | None) -> CLIPVisionModel:
    """CLIP's vision tower from image_encoder/, every weight present in its shape (transformers would initialise a
    missing one at random and only warn); a projection head beside it is not used and may be there."""
    encoder, report = load_component(CLIPVisionModel, source, "image_encoder", revision, output_loading_info=True)
    absent = [*report.get("missing_keys", ()), *report.get("mismatched_keys", ())]
    if absent:
        raise SmaError(
            f"the image_encoder/ of {source} is not CLIP's vision tower: {len(absent)} weights missing or of "
            f"another shape (e.g. {absent[0]!r})"
        )
    return encoder


@dataclass
class ImageCondition:
    """What the transformer is given of an image: `latents` (TI2V: the image's latent, (1, c, 1, h, w); I2V-14B:
    mask and the latents of the image and black frames, (1, 4 + c, f, h, w)); `image_embeds`: CLIP's states."""

    latents: torch.Tensor
    image_embeds: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        """By name, on the CPU: what an adapter saves."""
        named = {"image_latents": self.latents, "image_embeds": self.image_embeds}
        return {name: tensor.cpu() for name, tensor in named.items() if tensor is not None}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], device: torch.device) -> ImageCondition | None:
        if "image_latents" not in tensors:
            return None
        embeds = tensors.get("image_embeds")
        return cls(tensors["image_latents"].to(device), None if embeds is None else embeds.to(device))


@dataclass
class WanImageToVideoModel(WanModel):
    image_encoder: CLIPVisionModel | None = None
    image_processor: CLIPImageProcessorPil | None = None
    expand_timesteps: bool = False  # Wan 2.2 TI2V: frame 0 given in the input, timestep 0 on its tokens
    condition: ImageCondition | None = None

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        scheduler: str,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        **components,
    ) -> WanImageToVideoModel:
        """As WanModel, with the CLIP image encoder and its processor where model_index.json names them, and the
        layout model_index.json says (`expand_timesteps`)."""
        index = model_index(source, revision)
        components["expand_timesteps"] = bool(index.get("expand_timesteps"))
        if (index.get("image_encoder") or [None, None])[1] is not None:
            components["image_encoder"] = load_image_encoder(source, revision)
            components["image_processor"] = load_component(CLIPImageProcessorPil, source, "image_processor", revision)
        return super().from_pretrained(source, scheduler, device, revision, **components)

    @property
    def takes_last_image(self) -> bool:
        """Wan 2.1 FLF2V: every condition is a first and a last picture (the image embedder's positions for two)."""
        return self.unet.config.get("pos_embed_seq_len") is not None

    @property
    def needs_image(self) -> bool:
        """I2V-14B samples nothing without an image; TI2V-5B also samples text to video."""
        return not self.expand_timesteps

    def networks(self) -> list[torch.nn.Module]:
        networks = super().networks()
        return networks if self.image_encoder is None else [*networks, self.image_encoder]

    @contextlib.contextmanager
    def conditioned_on(self, condition: ImageCondition | None) -> Iterator[None]:
        """`predict` given `condition` inside the block (None: no image), the previous condition after it."""
        before, self.condition = self.condition, condition
        try:
            yield
        finally:
            self.condition = before

    @torch.no_grad()
    def image_condition(
        self,
        image: Image.Image,
        pixels: torch.Tensor,
        frames: int,
        last: tuple[Image.Image, torch.Tensor] | None = None,
    ) -> ImageCondition:
        """The condition of an image already sized as the video: `pixels` (1, 3, h, w) in [-1, 1], `image` the same
        as a PIL image (what CLIP's processor reads), for a video of `frames` frames; `last` (FLF2V): the picture the
        video ends on, as (image, pixels)."""
        if (last is not None) != self.takes_last_image:
            needs = "a first and a last picture" if self.takes_last_image else "one picture"
            raise SmaError(f"{self.source} takes {needs} (`image`, `last_image`)")
        pixels = pixels[:, :, None].to(self.vae.device, torch.float32)
        if self.expand_timesteps:
            return ImageCondition(self.encode_video(pixels))
        ending = [] if last is None else [last[1][:, :, None].to(pixels)]
        black = pixels.new_zeros(1, 3, frames - 1 - len(ending), *pixels.shape[-2:])
        latents = self.encode_video(torch.cat([pixels, black, *ending], dim=2))
        mask = torch.zeros_like(latents[:, :1]).expand(-1, MASK_CHANNELS, -1, -1, -1).clone()
        mask[:, :, 0] = 1  # the first latent frame's 4 video frames are the given image (its frame 0 repeated)
        if ending:
            mask[:, -1, -1] = 1  # the last video frame: the last of the last latent frame's 4
        images = [image] if last is None else [image, last[0]]
        embeds = self.encode_image(images) if self.unet.config.image_dim is not None else None  # none on I2V-A14B
        return ImageCondition(torch.cat([mask, latents], dim=1), embeds)

    def encode_image(self, images: list[Image.Image]) -> torch.Tensor:
        """CLIP's penultimate hidden states of `images` (n, 257, 1280 for ViT-H), float32 on the transformer's
        device; the encoder visits that device for the call only, as UMT5 does."""
        if self.image_encoder is None:
            raise SmaError(f"{self.source} has no image_encoder/: Wan 2.1 image-to-video needs its CLIP encoder")
        device = self.device
        inputs = self.image_processor(images=images, return_tensors="pt").to(device)
        self.image_encoder.to(device)
        try:
            states = self.image_encoder(**inputs, output_hidden_states=True).hidden_states[-2]
        finally:
            self.image_encoder.to("cpu")
        return states.float()

    @property
    def given_frames(self) -> int:
        """Latent frames the input is given rather than noised (TI2V with an image: frame 0)."""
        return int(self.expand_timesteps and self.condition is not None)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Velocity for latents (b, c, f, h, w) at timesteps (one, or one per sample) given the current image, as
        WanImageToVideoPipeline builds the input; without an image (TI2V only) as WanPipeline does."""
        condition, batch, dtype = self.condition, latents.shape[0], self.dtype
        if condition is None and self.needs_image:
            raise SmaError(f"{self.source} is an image-to-video model: give it an image (`image`)")
        timesteps = torch.as_tensor(timesteps, device=latents.device).expand(batch)
        expert = self.use_expert(self.expert_for(timesteps))
        image_embeds = None
        if self.expand_timesteps:
            noised = torch.ones_like(latents[:1, :1], dtype=torch.float32)
            if condition is not None:
                noised[:, :, 0] = 0
                latents = (1 - noised) * condition.latents + noised * latents
            patch = self.unet.config.patch_size
            tokens = noised[0, 0, :: patch[0], :: patch[1], :: patch[2]].flatten()
            timesteps = tokens[None] * timesteps[:, None]  # (b, tokens): 0 on the given frame's tokens
        else:
            latents = torch.cat([latents, condition.latents.expand(batch, -1, -1, -1, -1).to(latents.dtype)], dim=1)
            if condition.image_embeds is not None:  # none on I2V-A14B
                image_embeds = condition.image_embeds.repeat(batch, 1, 1).to(dtype)  # FLF2V: first, last, first, ...
        return expert(
            hidden_states=latents.to(dtype),
            timestep=timesteps,
            encoder_hidden_states=text.to(dtype),
            encoder_hidden_states_image=image_embeds,
        ).sample

    def with_first_frame(self, latents: torch.Tensor) -> torch.Tensor:
        """`latents` with latent frame 0 replaced by the current image's own latent (none: unchanged)."""
        if self.condition is None:
            return latents
        first = self.condition.latents[:, -self.vae.config.z_dim :, :1].to(latents)
        return torch.cat([first.expand(latents.shape[0], -1, -1, -1, -1), latents[:, :, 1:]], dim=2)
