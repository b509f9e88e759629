"""Inflate a 2D diffusion network (UNet2DConditionModel, ControlNetModel) to video without changing its weights.

Frames of a video travel through the 2D network folded into the batch. Two things make
them a video: spatial self-attention (`attn1`) takes its keys and values from other frames
(an attention processor), and a temporal transformer after each spatial transformer attends
across frames at every position. Its output projection starts at zero, so the inflated
network starts as the image network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

from sma.errors import SmaError

TEMPORAL_LAYER = "temporal_transformer"


@dataclass
class FrameCount:
    """How many frames each video in the folded batch has; the video model sets it before each forward."""

    frames: int = 1


def sparse_causal_sources(frames: int) -> list[torch.Tensor]:
    """Tune-A-Video: frame k attends to frame 0 and frame k - 1 (frame 0 to itself)."""
    return [torch.zeros(frames, dtype=torch.long), (torch.arange(frames) - 1).clamp(min=0)]


def key_frame_sources(frames: int) -> list[torch.Tensor]:
    """ControlVideo: every frame attends to the key frame, frame 0."""
    return [torch.zeros(frames, dtype=torch.long)]


ATTENTION_PATTERNS = {"sparse_causal": sparse_causal_sources, "key_frame": key_frame_sources}


class CrossFrameAttnProcessor(AttnProcessor2_0):
    """Self-attention whose keys and values come from chosen frames of the same video.

    The queries stay those of each frame; for frame k the keys and values are the tokens of
    the frames `sources(frames)[i][k]` for each i, concatenated. diffusers' processor does the rest,
    since keys and values are read from `encoder_hidden_states` when it is given.
    """

    def __init__(self, pattern: str, count: FrameCount) -> None:
        super().__init__()
        self.sources = ATTENTION_PATTERNS[pattern]
        self.count = count

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        video = hidden_states.unflatten(0, (-1, self.count.frames))  # (b, f, tokens, d)
        sources = torch.cat([video[:, index.to(video.device)] for index in self.sources(self.count.frames)], dim=2)
        return super().__call__(attn, hidden_states, sources.flatten(0, 1), attention_mask, temb)


def temporal_layer(spatial: Transformer2DModel) -> TransformerTemporalModel:
    """diffusers' temporal transformer (as in UNet3D) with the spatial one's width and heads, output zeroed."""
    config = spatial.config
    layer = TransformerTemporalModel(
        num_attention_heads=config.num_attention_heads,
        attention_head_dim=config.attention_head_dim,
        in_channels=config.in_channels,
        norm_num_groups=config.norm_num_groups,
    )
    torch.nn.init.zeros_(layer.proj_out.weight)
    torch.nn.init.zeros_(layer.proj_out.bias)
    return layer


def _apply_temporal(count: FrameCount):
    def hook(module, _inputs, output):
        sample = output[0] if isinstance(output, tuple) else output.sample
        mixed = getattr(module, TEMPORAL_LAYER)(sample, num_frames=count.frames, return_dict=False)[0]
        return (mixed, *output[1:]) if isinstance(output, tuple) else type(output)(sample=mixed)

    return hook


def inflate(network: torch.nn.Module, pattern: str | None, count: FrameCount, seed: int = 0) -> None:
    """Give every spatial transformer of `network` cross-frame self-attention and a temporal layer after it.

    `pattern` None keeps per-frame self-attention (only the temporal layers are added).
    Inflate right after loading, in float32 on the CPU, then move the whole network.
    Temporal layers are registered as `<transformer>.temporal_transformer`, so they save
    and load by name like any other parameter. Their initial weights come from `seed`
    (the global random state is left alone), so an inflated model is reproducible.
    """
    if pattern is not None and pattern not in ATTENTION_PATTERNS:
        raise SmaError(f"unknown attention pattern {pattern!r}: expected one of {', '.join(ATTENTION_PATTERNS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in list(network.modules()):
            if not isinstance(module, Transformer2DModel):
                continue
            if pattern is not None:
                for block in module.transformer_blocks:
                    block.attn1.set_processor(CrossFrameAttnProcessor(pattern, count))
            module.add_module(TEMPORAL_LAYER, temporal_layer(module))
            module.register_forward_hook(_apply_temporal(count))
