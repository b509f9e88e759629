"""Wan 2.1 text-to-video (Wan-AI/Wan2.1-T2V-1.3B-Diffusers, -14B-Diffusers), as diffusers' WanPipeline runs it.

- Denoiser: `WanTransformer3DModel`, a diffusion transformer over patches of (1, 2, 2) latent
  voxels; flow matching: `x_t = (1 - s) x0 + s eps`, the model predicts `eps - x0` at timestep
  `1000 s`. It is held in the `unet` field, the name the training loop and the methods use
  for "the network that denoises".
- VAE: `AutoencoderKLWan`, causal in time: `4k + 1` frames become `k + 1` latent frames; latent
  frame 0 encodes the first frame alone, every later one the next 4 frames. Latents are
  normalised per channel with the VAE config's `latents_mean` and `latents_std`, as WanPipeline
  does. It stays in float32 (diffusers' advice for Wan's decoding quality).
- Text: UMT5 (`UMT5EncoderModel`, the XXL encoder on the Hub: 5.7 B parameters), prompts cleaned
  as WanPipeline does, padded and cut to `text_tokens` (512, WanPipeline's call; FlowMotion's run.py encodes at
  `encode_prompt`'s default, 226); the states past each prompt's length are zeroed, but the cross-attention has no
  mask, so the length changes the result. Embeddings are cached per prompt; UMT5 waits on the CPU and visits the
  transformer's device only to encode (in `text_dtype` when that is a GPU: bfloat16, as Wan's own code runs it,
  float16 in FlowMotion's run.py); `release_text_encoder` frees it.
- Wan 2.2 A14B (Wan-AI/Wan2.2-T2V-A14B-Diffusers, -I2V-A14B-Diffusers): two transformers of the 14B's shape, as
  WanPipeline runs them: `transformer` (the high-noise expert) at timesteps >= `boundary_ratio * 1000`
  (model_index.json: 0.875 T2V, 0.9 I2V), `transformer_2` (low noise) below. `unet` holds the high-noise expert,
  `unet_2` the low-noise one; `predict` runs the expert its timestep selects, and only that one is on the
  accelerator: the idle expert waits on the CPU (`use_expert`), so two 14B experts need the memory of one.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler, WanTransformer3DModel
from transformers import AutoTokenizer, UMT5EncoderModel

from sma.backbones.hub import load_component, model_index
from sma.backbones.latent_video import LatentVideoModel, encode_prompts_once, warn_cut_prompts
from sma.errors import SmaError

PIPELINE = "WanPipeline"
MAX_PROMPT_TOKENS = 512  # WanPipeline's max_sequence_length when called
SCHEDULERS = {cls.__name__: cls for cls in (UniPCMultistepScheduler, FlowMatchEulerDiscreteScheduler)}
TEMPORAL_FACTOR = 4  # Wan 2.1's VAE: 4k + 1 frames -> k + 1 latent frames
HIGH_NOISE, LOW_NOISE = "transformer", "transformer_2"  # Wan 2.2 A14B's experts, by their pipeline component
# Each expert's LoRA file: its suffix (Wan's own folders, high_noise_model/ and low_noise_model/) and where it loads
EXPERT_FILES = {HIGH_NOISE: "high_noise", LOW_NOISE: "low_noise"}
EXPERT_LOADERS = {
    HIGH_NOISE: {
        "diffusers": "pipe.load_lora_weights(FILE): the high-noise transformer",
        "comfyui": "LoraLoaderModelOnly after the high-noise model's loader",
    },
    LOW_NOISE: {
        "diffusers": "pipe.load_lora_weights(FILE, load_into_transformer_2=True): the low-noise transformer_2",
        "comfyui": "LoraLoaderModelOnly after the low-noise model's loader",
    },
}

# A LoRA layer's diffusers name -> its name in the original Wan 2.1 code (Wan-Video/Wan2.1 wan/modules/model.py:
# WanAttentionBlock's `self_attn` and `cross_attn` with Linear q, k, v, o; `ffn` = Sequential(Linear, GELU, Linear)),
# the names the original checkpoints and ComfyUI's Wan model use.
DIFFUSERS_LAYER = re.compile(r"blocks\.(\d+)\.(?:(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)|ffn\.net\.(0\.proj|2))")
ORIGINAL_ATTENTION = {"attn1": "self_attn", "attn2": "cross_attn"}
ORIGINAL_PROJECTION = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}
ORIGINAL_FEED_FORWARD = {"0.proj": "ffn.0", "2": "ffn.2"}


def check_frame_count(frames: int, factor: int = TEMPORAL_FACTOR) -> None:
    """Wan's causal VAE takes 4k + 1 frames (the first alone, then groups of 4)."""
    if frames % factor != 1:
        below = max(1, (frames - 1) // factor * factor + 1)
        raise SmaError(f"Wan takes {factor}k+1 frames, got {frames} (`video.frames`): try {below} or {below + factor}")


def latent_frame_count(frames: int, factor: int = TEMPORAL_FACTOR) -> int:
    """The latent frames of 4k + 1 video frames: k + 1 (the first frame alone, then groups of 4)."""
    return (frames - 1) // factor + 1


def original_layer_name(layer: str) -> str:
    """The original Wan 2.1 name of a transformer block's attention or feed-forward Linear `layer` (diffusers name):
    `blocks.3.attn2.to_out.0` -> `blocks.3.cross_attn.o`, `blocks.3.ffn.net.0.proj` -> `blocks.3.ffn.0`."""
    match = DIFFUSERS_LAYER.fullmatch(layer)
    if match is None:
        raise SmaError(f"{layer} is not an attention or feed-forward layer of a Wan transformer block")
    block, attention, projection, feed_forward = match.groups()
    if feed_forward is not None:
        return f"blocks.{block}.{ORIGINAL_FEED_FORWARD[feed_forward]}"
    return f"blocks.{block}.{ORIGINAL_ATTENTION[attention]}.{ORIGINAL_PROJECTION[projection]}"


def clean_prompt(prompt: str) -> str:
    """WanPipeline's prompt cleaning without ftfy: HTML entities unescaped, runs of white space made one."""
    text = html.unescape(html.unescape(prompt)).strip()
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class WanModel(LatentVideoModel):
    unet: WanTransformer3DModel
    vae: AutoencoderKLWan
    text_encoder: UMT5EncoderModel | None
    scheduler: UniPCMultistepScheduler | FlowMatchEulerDiscreteScheduler
    prompt_embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    unet_2: WanTransformer3DModel | None = None  # Wan 2.2 A14B: the low-noise expert
    boundary_ratio: float | None = None  # Wan 2.2 A14B: the experts switch at this share of the training timesteps
    active: str = HIGH_NOISE  # the expert on the accelerator (the other waits on the CPU)
    text_tokens: int = MAX_PROMPT_TOKENS  # every prompt padded (or cut) to this many tokens
    text_dtype: torch.dtype = torch.bfloat16  # UMT5's weights when loaded for a GPU (float32 for the CPU)
    diffusers_component: ClassVar[str] = "transformer"

    @classmethod
    def comfyui_lora_keys(cls, layer: str) -> tuple[str, str]:
        """The original checkpoint's name behind `diffusion_model.`, `lora_down`/`lora_up`: the LoRA layout ComfyUI
        loads onto its Wan model (any weight name of the original model, no alpha: scale 1)."""
        prefix = f"diffusion_model.{original_layer_name(layer)}"
        return f"{prefix}.lora_down.weight", f"{prefix}.lora_up.weight"

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        scheduler: str,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        **components,
    ) -> WanModel:
        """Every component in float32 (UMT5 in `text_dtype` for a GPU) from a Hub id (at `revision`) or a folder;
        `scheduler` is the class model_index.json names; `components` are further fields (the text encoding's, a
        subclass's)."""
        if scheduler not in SCHEDULERS:
            raise SmaError(f"the scheduler/ of {source} is a {scheduler}: sma samples Wan with {', '.join(SCHEDULERS)}")
        index = model_index(source, revision)
        if (index.get(LOW_NOISE) or [None, None])[1] is not None:
            components["unet_2"] = load_component(WanTransformer3DModel, source, LOW_NOISE, revision)
            components["boundary_ratio"] = index.get("boundary_ratio")
        model = cls(
            unet=load_component(WanTransformer3DModel, source, HIGH_NOISE, revision),
            vae=load_component(AutoencoderKLWan, source, "vae", revision),
            text_encoder=load_component(UMT5EncoderModel, source, "text_encoder", revision),
            tokenizer=load_component(AutoTokenizer, source, "tokenizer", revision),
            scheduler=load_component(SCHEDULERS[scheduler], source, "scheduler", revision),
            source=source,
            **components,
        )
        if torch.device(device).type == "cuda":  # half precision also halves UMT5's memory while it waits on the CPU
            model.text_encoder.to(model.text_dtype)
        return model.freeze().to(device)

    def denoisers(self) -> dict[str, torch.nn.Module]:
        """The transformer; on Wan 2.2 A14B both experts, by their pipeline component."""
        experts = {HIGH_NOISE: self.unet, LOW_NOISE: self.unet_2}
        return {name: expert for name, expert in experts.items() if expert is not None}

    def networks(self) -> list[torch.nn.Module]:
        networks = [*self.denoisers().values(), self.vae]
        return networks if self.text_encoder is None else [*networks, self.text_encoder]

    @property
    def boundary_timestep(self) -> float | None:
        """The timestep from which the high-noise expert runs (None: one transformer for every timestep)."""
        if self.unet_2 is None:
            return None
        return self.boundary_ratio * self.scheduler.config.num_train_timesteps

    def expert_for(self, timesteps: torch.Tensor) -> str:
        """The expert WanPipeline runs at these timesteps (one, or one per sample: all on one side of the boundary)."""
        boundary = self.boundary_timestep
        if boundary is None:
            return HIGH_NOISE
        high = torch.as_tensor(timesteps) >= boundary
        if not (high.all() or not high.any()):
            raise ValueError(f"timesteps {timesteps.tolist()} straddle the experts' boundary {boundary}")
        return HIGH_NOISE if bool(high.flatten()[0]) else LOW_NOISE

    def use_expert(self, name: str) -> torch.nn.Module:
        """The expert `name`, on the accelerator; the one it replaces moves to the CPU first, so that one expert's
        weights are there at a time."""
        if name != self.active:
            device, idle = self.device, self.denoisers()[self.active]
            idle.to("cpu")
            self.denoisers()[name].to(device)
            self.active = name
        return self.denoisers()[name]

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> WanModel:
        """The active transformer to `device` and `dtype` (its float32 modules stay float32, as diffusers keeps
        them; an idle expert takes the dtype and stays on the CPU); the VAE to `device` in float32; UMT5 stays on
        the CPU between encodings."""
        self.denoisers()[self.active].to(device)
        if dtype is not None:
            self.cast_frozen(dtype, trained_too=True)
        self.vae.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.denoisers()[self.active].device

    def cast_frozen(self, dtype: torch.dtype, trained_too: bool = False) -> None:
        """Frozen transformer weights in `dtype`, except those diffusers keeps in float32 (`_keep_in_fp32_modules`:
        norms, time embedding, modulation tables), which the forward reads in float32."""
        keep = tuple(self.unet._keep_in_fp32_modules)
        for network in self.denoisers().values():
            for name, parameter in network.named_parameters():
                if (trained_too or not parameter.requires_grad) and not any(part in keep for part in name.split(".")):
                    parameter.data = parameter.data.to(dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.patch_embedding.weight.dtype

    @property
    def vae_scale_factor(self) -> int:
        return self.vae.config.scale_factor_spatial

    @property
    def temporal_scale_factor(self) -> int:
        return self.vae.config.scale_factor_temporal

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor * self.unet.config.patch_size[1]

    def latent_frames(self, frames: int) -> int:
        return latent_frame_count(frames, self.temporal_scale_factor)

    def latent_shape(self, frames: int, height: int, width: int, batch: int = 1) -> tuple[int, ...]:
        scale = self.vae_scale_factor
        return (batch, self.vae.config.z_dim, self.latent_frames(frames), height // scale, width // scale)

    def _normalisation(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        config = self.vae.config
        shape = (1, config.z_dim, 1, 1, 1)
        mean = torch.tensor(config.latents_mean).view(shape).to(like.device, like.dtype)
        std = torch.tensor(config.latents_std).view(shape).to(like.device, like.dtype)
        return mean, std

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
        """Pixels (b, 3, 4k+1, h, w) in [-1, 1] -> normalised latents (b, c, k+1, h/8, w/8), VAE mean, float32.

        The whole clip goes through the causal VAE at once (it processes time in chunks itself);
        a single frame encodes as an image (one latent frame). `slice_size` is not used.
        """
        check_frame_count(video.shape[2], self.temporal_scale_factor)
        latents = self.vae.encode(video.to(self.vae.device, self.vae.dtype)).latent_dist.mode().float()
        mean, std = self._normalisation(latents)
        return (latents - mean) / std

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
        """Normalised latents (b, c, k+1, h, w) -> pixels (b, 3, 4k+1, H, W) in [-1, 1], float32 on the CPU."""
        latents = latents.to(self.vae.device, self.vae.dtype)
        mean, std = self._normalisation(latents)
        pixels = self.vae.decode(latents * std + mean).sample
        return pixels.float().clamp(-1, 1).cpu()

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """UMT5 states (b, text_tokens, d) on the transformer's device, float32, each prompt encoded once."""
        return encode_prompts_once(self, prompts, "UMT5")

    def run_text_encoder(self, prompts: list[str]) -> torch.Tensor:
        """UMT5 on the transformer's device for one call, then back to the CPU; states past each prompt's
        tokens set to zero, as WanPipeline does. Returned on the CPU in float32."""
        prompts = [clean_prompt(prompt) for prompt in prompts]
        warn_cut_prompts(self.tokenizer, prompts, self.text_tokens)
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.text_tokens,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        device = self.device
        self.text_encoder.to(device)
        try:
            mask = tokens.attention_mask.to(device)
            states = self.text_encoder(tokens.input_ids.to(device), mask).last_hidden_state
        finally:
            self.text_encoder.to("cpu")
        return (states.float() * mask[..., None]).cpu()

    def release_text_encoder(self) -> None:
        """Free UMT5; prompts encoded so far stay available."""
        self.text_encoder = None

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Velocity `eps - x0` for latents (b, c, f, h, w) at timesteps (`1000 s`; one, or one per sample), in the
        transformer's dtype, from inputs cast to it as WanPipeline does; by the expert the timesteps select."""
        dtype = self.dtype
        timesteps = torch.as_tensor(timesteps, device=latents.device).expand(latents.shape[0])
        return self.use_expert(self.expert_for(timesteps))(
            hidden_states=latents.to(dtype), timestep=timesteps, encoder_hidden_states=text_embeddings.to(dtype)
        ).sample

    def enable_gradient_checkpointing(self) -> None:
        """diffusers' own checkpointing: each transformer block is recomputed in backward."""
        for network in self.denoisers().values():
            network.enable_gradient_checkpointing()

    def checkpoint_some_layers(self, names: Iterable[str]) -> None:
        """The named blocks recomputed in backward; on two experts the same blocks of both: a measuring forward runs
        one expert, and the other, of the same shape, may train next."""
        blocks = {name.split(".", 1)[1] for name in names}
        super().checkpoint_some_layers(f"{expert}.{block}" for expert in self.denoisers() for block in blocks)

    def checkpointable_layers(self) -> dict[str, torch.nn.Module]:
        """The transformer blocks of each denoiser."""
        return {
            f"{denoiser}.blocks.{index}": block
            for denoiser, network in self.denoisers().items()
            for index, block in enumerate(network.blocks)
        }
