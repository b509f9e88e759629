"""What every latent video backbone shares: VAE and text encoding, sizes, feature hooks.

The text-to-video model (UNet3D) and the inflated image model (UNet2D run frame by frame)
differ only in how they load and run the UNet; everything here works on either.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers import AutoencoderKL, DDIMScheduler
from torch.utils.checkpoint import checkpoint
from transformers import CLIPTextModel, CLIPTokenizer

from sma.backbones.hub import load_component
from sma.errors import SmaError


def lora_target_patterns(temporal_transformers: str) -> dict[str, re.Pattern]:
    """MotionDirector's LoRA layers, as full-name patterns, in a UNet whose image transformers are
    `attentions.M` and whose temporal transformers match `temporal_transformers`: the q/k/v/out
    projections of attn1 and the feed-forward of each image transformer block ("spatial"); those of
    attn1, attn2 and the feed-forward of each temporal one ("temporal")."""

    def block_layers(attentions: str) -> str:
        return rf"transformer_blocks\.\d+\.(({attentions})\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2))"

    return {
        "spatial": re.compile(rf"(.*\.)?attentions\.\d+\.{block_layers('attn1')}"),
        "temporal": re.compile(rf"(.*\.)?({temporal_transformers})\.{block_layers('attn1|attn2')}"),
    }


def matching_linears(network: torch.nn.Module, patterns: dict[str, re.Pattern]) -> dict[str, list[str]]:
    """Names of the Linear layers of `network` whose full name each pattern matches, per pattern."""
    names = [name for name, module in network.named_modules() if isinstance(module, torch.nn.Linear)]
    return {key: [name for name in names if pattern.fullmatch(name)] for key, pattern in patterns.items()}


# The layer lists of a UNet block, in diffusers' UNet3D blocks, Show-1's blocks and UNetMotionModel's blocks.
BLOCK_LAYERS = ("resnets", "temp_convs", "attentions", "temp_attentions", "motion_modules")


def block_layers(network: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The layers of each block of a UNet (or ControlNet) by module name, and its `transformer_in`: the repeated
    units that gradient checkpointing recomputes and regional compilation compiles one by one."""
    blocks = [block for block in (*network.down_blocks, network.mid_block, *getattr(network, "up_blocks", ())) if block]
    layers = [layer for block in blocks for name in BLOCK_LAYERS for layer in getattr(block, name, ())]
    chosen = {id(layer) for layer in layers}
    if getattr(network, "transformer_in", None) is not None:
        chosen.add(id(network.transformer_in))
    return {name: module for name, module in network.named_modules() if id(module) in chosen}


def is_checkpointed(layer: torch.nn.Module) -> bool:
    return isinstance(layer.forward, functools.partial) and layer.forward.func is checkpoint


def checkpoint_layers(layers: Iterable[torch.nn.Module]) -> None:
    """Recompute each of `layers` during backward instead of keeping its activations.

    Per layer rather than per block: backward then holds one layer's activations at a time, not a
    whole block's. It also covers what diffusers' own checkpointing leaves out: UNet3DConditionModel
    supports none, and UNetMotionModel never checkpoints its motion modules (the layers VMC trains).
    """
    for layer in layers:
        if not is_checkpointed(layer):
            layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)


COMPILE_BACKEND = "SMA_COMPILE_BACKEND"  # environment variable: torch.compile's backend (default inductor)


def compile_layers(layers: Iterable[torch.nn.Module]) -> None:
    """Regional compilation: each layer's forward compiled on its own (`torch.compile`), not the whole network, so
    that layers of one shape share their compiled code and compiling takes seconds, not minutes. Inside gradient
    checkpointing where a layer has it (torch's `checkpoint` is not traced by dynamo: the recomputation runs the
    compiled code too); module hooks stay outside. The backend is inductor unless the environment variable
    `SMA_COMPILE_BACKEND` names another (the tests use aot_eager: inductor takes minutes on a CPU).

    Static shapes (`dynamic=False`: one graph per shape, the kernels CUDA graphs can take); layers of one class
    share a code object, and dynamo's limit of recompilations per code object (8) is raised to a few per layer
    (shapes, a LoRA switched on or off), or the layers past it would silently run uncompiled."""
    layers = list(layers)
    backend = os.environ.get(COMPILE_BACKEND, "inductor")
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 4 * len(layers))
    for layer in layers:
        if is_checkpointed(layer):
            compiled = torch.compile(layer.forward.args[0], backend=backend, dynamic=False)
            layer.forward = functools.partial(checkpoint, compiled, use_reentrant=False)
        else:
            layer.forward = torch.compile(layer.forward, backend=backend, dynamic=False)


def encode_prompts_once(model, prompts: list[str], encoder: str) -> torch.Tensor:
    """Each prompt through `model.run_text_encoder` once, kept in `model.prompt_embeddings`, so that a large
    text encoder (T5, UMT5) can be released once every prompt a run needs is encoded; on the model's device."""
    missing = list(dict.fromkeys(prompt for prompt in prompts if prompt not in model.prompt_embeddings))
    if missing and model.text_encoder is None:
        raise SmaError(
            f"the {encoder} text encoder was released before {missing[0]!r} was encoded: "
            "encode every prompt before `release_text_encoder`"
        )
    if missing:
        model.prompt_embeddings.update(zip(missing, model.run_text_encoder(missing), strict=True))
    return torch.stack([model.prompt_embeddings[prompt] for prompt in prompts]).to(model.device)


def load_text_and_vae(source: str, revision: str | None = None) -> dict:
    """VAE, text encoder, tokenizer and scheduler of a diffusers-layout model, as keyword arguments."""
    return {
        "vae": load_component(AutoencoderKL, source, "vae", revision),
        "text_encoder": load_component(CLIPTextModel, source, "text_encoder", revision),
        "tokenizer": load_component(CLIPTokenizer, source, "tokenizer", revision),
        "scheduler": load_component(DDIMScheduler, source, "scheduler", revision),
        "source": source,
    }


CLOSED_VOCABULARY = 5000  # tokens: a tokenizer this small knows a few words (the embedded models'), not a language
WORDS_IN_PIECES = "sma_words_in_pieces"  # tokenizer_config.json: the words a model learnt as its merges split them


class UnknownWordsWarning(UserWarning):
    """A prompt has words a closed-vocabulary tokenizer splits into pieces the model never learnt, or symbols
    (emoji, other scripts) that a tokenizer has no token for."""


class LongPromptWarning(UserWarning):
    """A prompt is longer than the text encoder reads: its end is cut."""


def warn_cut_prompts(tokenizer, prompts: list[str], max_length: int) -> None:
    """Warn once per prompt over the text encoder's `max_length` tokens: the tokenizer cuts it there, silently."""
    for prompt in dict.fromkeys(prompts):
        count = len(tokenizer(prompt).input_ids)
        if count > max_length and prompt not in WARNED_WORDS:
            WARNED_WORDS.add(prompt)
            read = tokenizer(prompt, truncation=True, max_length=max_length).input_ids
            last = tokenizer.decode(read, skip_special_tokens=True).split()[-3:]
            warnings.warn(
                f"{prompt[:30]!r}... is {count} tokens and the text encoder reads {max_length}: everything after "
                f"{' '.join(last)!r} is cut: shorten it",
                LongPromptWarning,
                stacklevel=3,
            )


def warn_unknown_words(tokenizer, prompts: list[str]) -> None:
    """Warn once per word that a closed-vocabulary tokenizer does not hold whole: it becomes letters and pieces
    without meaning to the model, silently (an open vocabulary, CLIP's 49408, splits rare words on purpose); and
    once per symbol any tokenizer reads as its unknown token, or a closed one only as bytes (emoji)."""
    closed = len(tokenizer) < CLOSED_VOCABULARY
    learnt = set(tokenizer.init_kwargs.get(WORDS_IN_PIECES, ()))
    unknown = []
    for item in dict.fromkeys(re.findall(r"[\w']+|[^\w\s']", " ".join(prompts).lower())):
        pieces = tokenizer.tokenize(item)
        # a word its tokenizer_config.json names as learnt in pieces is one the model learnt, though the merges
        # read it in pieces (the embedded models: trained on those pieces)
        split = closed and len(pieces) > 1 and item not in learnt
        if item not in WARNED_WORDS and (tokenizer.unk_token in pieces or split):
            unknown.append(item)
    if unknown:
        WARNED_WORDS.update(unknown)
        vocabulary = getattr(tokenizer, "vocab_file", None) or tokenizer.name_or_path
        pronoun = "it" if len(unknown) == 1 else "them"
        warnings.warn(
            f"{', '.join(unknown)}: not in this model's vocabulary of {len(tokenizer)} tokens ({vocabulary}), so "
            f"the model reads {pronoun} as pieces or as nothing: use its words for a meaningful result",
            UnknownWordsWarning,
            stacklevel=3,
        )


WARNED_WORDS: set[str] = set()  # words, symbols and long prompts warned about in this process: once is enough


@dataclass
class LatentVideoModel:
    unet: torch.nn.Module
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler
    source: str
    # Backbones with layers across frames name them (full module names of the UNet): the q/k/v VMC trains,
    # and MotionDirector's "spatial" and "temporal" LoRA layers (see `lora_target_patterns`).
    temporal_attention_pattern: ClassVar[re.Pattern | None] = None
    lora_patterns: ClassVar[dict[str, re.Pattern] | None] = None
    # The pipeline component diffusers' `load_lora_weights` puts a LoRA in; its keys start with this name.
    diffusers_component: ClassVar[str] = "unet"

    @classmethod
    def pretrained_weights(cls, source: str, revision: str | None = None, **sources: str) -> dict[str, torch.Tensor]:
        """The pretrained weights of the denoiser by parameter name, without the rest of the model: what
        an export measures trained layers against."""
        raise SmaError(f"{cls.__name__} does not name its pretrained denoiser weights")

    @classmethod
    def diffusers_lora_keys(cls, layer: str) -> tuple[str, str]:
        """(down, up) keys of a LoRA on the denoiser's Linear `layer` as diffusers' `load_lora_weights` reads
        them: peft's `lora_A`/`lora_B`, behind the pipeline component's name."""
        prefix = f"{cls.diffusers_component}.{layer}"
        return f"{prefix}.lora_A.weight", f"{prefix}.lora_B.weight"

    @classmethod
    def comfyui_lora_keys(cls, layer: str) -> tuple[str, str]:
        """(down, up) keys of a LoRA on the denoiser's Linear `layer` as ComfyUI loads them, in the original
        model's names (ComfyUI does not load diffusers names); a backbone ComfyUI cannot load says why."""
        raise SmaError(f"ComfyUI has no LoRA loader for {cls.__name__} models")

    def denoisers(self) -> dict[str, torch.nn.Module]:
        """The networks that predict the noise, by name: those the methods train."""
        return {"unet": self.unet}

    def networks(self) -> list[torch.nn.Module]:
        """The modules with weights; frozen and in eval mode after loading."""
        return [*self.denoisers().values(), self.vae, self.text_encoder]

    def checkpointable_layers(self) -> dict[str, torch.nn.Module]:
        """The layers checkpointing can recompute and regional compilation compiles, by "denoiser.module" name."""
        return {
            f"{denoiser}.{name}": layer
            for denoiser, network in self.denoisers().items()
            for name, layer in block_layers(network).items()
        }

    def enable_gradient_checkpointing(self) -> None:
        """Every layer recomputed in backward."""
        checkpoint_layers(self.checkpointable_layers().values())

    def checkpoint_some_layers(self, names: Iterable[str]) -> None:
        """The named layers (of `checkpointable_layers`) recomputed in backward; the others keep their activations."""
        layers = self.checkpointable_layers()
        checkpoint_layers(layers[name] for name in names)

    def compile_layers(self) -> None:
        """Each of `checkpointable_layers` compiled on its own (`compile_layers`)."""
        compile_layers(self.checkpointable_layers().values())

    def move_encoders(self, device: str | torch.device) -> None:
        """Move the networks that are not denoisers (VAE, text encoder): training needs only what they
        computed before it starts, so they can wait on the CPU and leave the accelerator's memory free."""
        denoisers = list(self.denoisers().values())
        for network in self.networks():
            if not any(network is denoiser for denoiser in denoisers):
                network.to(device)

    def cast_frozen(self, dtype: torch.dtype) -> None:
        """Frozen weights of the denoisers in `dtype` (half precision while training saves half their
        memory); trained parameters keep their float32 master copy."""
        for network in self.denoisers().values():
            for parameter in network.parameters():
                if not parameter.requires_grad:
                    parameter.data = parameter.data.to(dtype)

    def freeze(self):
        for module in self.networks():
            module.requires_grad_(False)
            module.eval()
        return self

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None):
        for module in self.networks():
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

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids padded to the tokenizer's length, on the model's device."""
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return tokens.input_ids.to(self.device)

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        warn_cut_prompts(self.tokenizer, prompts, self.tokenizer.model_max_length)
        warn_unknown_words(self.tokenizer, prompts)
        return self.text_encoder(self.tokenize(prompts)).last_hidden_state

    def release_text_encoder(self) -> None:
        """Free the text encoder once every prompt a run needs is encoded; a CLIP text encoder is small and stays."""

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Model output for latents (b, c, f, h, w) at `timesteps` with text embeddings (b, tokens, d)."""
        raise NotImplementedError

    def temporal_attention_projections(self) -> dict[str, torch.nn.Linear]:
        """The q/k/v projections of the attentions across frames, by name (VMC trains them)."""
        if self.temporal_attention_pattern is None:
            raise SmaError(f"{type(self).__name__} declares no temporal attention layers")
        pattern = self.temporal_attention_pattern
        return {name: module for name, module in self.unet.named_modules() if pattern.fullmatch(name)}

    def lora_targets(self) -> dict[str, list[str]]:
        """Names of the Linear layers that get MotionDirector's "spatial" and "temporal" LoRA: attention
        projections and feed-forward of the transformers within frames and of those across frames."""
        if self.lora_patterns is None:
            raise SmaError(f"{type(self).__name__} declares no spatial and temporal transformer layers")
        return matching_linears(self.unet, self.lora_patterns)

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
