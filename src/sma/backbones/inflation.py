"""Inflate Stable Diffusion 1.x (UNet2DConditionModel, ControlNetModel) to video as Tune-A-Video and ControlVideo do.

Frames travel through the 2D network folded into the batch. Inside diffusers'
`BasicTransformerBlock`, the inflation gives self-attention (`attn1`) keys and values from
other frames (an attention processor) and adds a temporal self-attention across the frames
at each position. The added modules are registered on the block (`<block>.attn_temp`,
`<block>.norm_temp`, `<block>.conv_temp`, the official names), so they save and load by
name, and run from forward hooks, so the diffusers classes and their weight loading stay as
they are. Their output starts at zero: the inflated network starts as the image network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


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


def temporal_attention(attn1: Attention) -> Attention:
    """A self-attention of attn1's width, heads and q/k/v biases, with diffusers' plain processor."""
    return Attention(
        query_dim=attn1.query_dim,
        heads=attn1.heads,
        dim_head=attn1.inner_dim // attn1.heads,
        bias=attn1.use_bias,
        upcast_attention=attn1.upcast_attention,
    )


def across_frames(attention: Attention, hidden_states: torch.Tensor, frames: int) -> torch.Tensor:
    """`attention` over the frames at each token position: (b * f, tokens, d) -> (b * f, tokens, d)."""
    video = hidden_states.unflatten(0, (-1, frames))  # (b, f, tokens, d)
    batch, _, tokens, _ = video.shape
    mixed = attention(video.transpose(1, 2).flatten(0, 1))  # (b * tokens, f, d)
    return mixed.unflatten(0, (batch, tokens)).transpose(1, 2).flatten(0, 1)


def add_temporal_after_feed_forward(block: BasicTransformerBlock, count: FrameCount) -> None:
    """Tune-A-Video: after the feed-forward, `h + attn_temp(norm_temp(h))` across frames.

    `norm_temp` is a LayerNorm (1, 0), `attn_temp` has attn1's shape, random q/k/v and a zero
    output projection (weight and bias), so the block's output is unchanged until it trains.
    """
    block.norm_temp = torch.nn.LayerNorm(block.attn1.query_dim)
    block.attn_temp = temporal_attention(block.attn1)
    torch.nn.init.zeros_(block.attn_temp.to_out[0].weight)
    torch.nn.init.zeros_(block.attn_temp.to_out[0].bias)

    def hook(module, _inputs, hidden_states):
        return hidden_states + across_frames(module.attn_temp, module.norm_temp(hidden_states), count.frames)

    block.register_forward_hook(hook)


def add_temporal_beside_self_attention(block: BasicTransformerBlock, count: FrameCount) -> None:
    """ControlVideo: `attn_temp` across frames on attn1's input (norm1's output), then `conv_temp`, a
    1x1 convolution, added to attn1's output, i.e. to the residual stream before attn2.

    `attn_temp` starts as a copy of attn1; `conv_temp` starts at zero (weight and bias).
    """
    block.attn_temp = temporal_attention(block.attn1)
    with torch.no_grad():
        for name, parameter in block.attn_temp.named_parameters():
            parameter.copy_(block.attn1.get_parameter(name))
    width = block.attn1.query_dim
    block.conv_temp = torch.nn.Conv2d(width, width, 1)
    torch.nn.init.zeros_(block.conv_temp.weight)
    torch.nn.init.zeros_(block.conv_temp.bias)

    def hook(_attn1, inputs, output):  # BasicTransformerBlock passes norm1's output positionally
        mixed = across_frames(block.attn_temp, inputs[0], count.frames)
        # a 1x1 convolution acts on each token alone: tokens as a (tokens, 1) image
        return output + block.conv_temp(mixed.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2)

    block.attn1.register_forward_hook(hook)


TEMPORAL_LAYERS: dict[str, Callable[[BasicTransformerBlock, FrameCount], None]] = {
    "after_feed_forward": add_temporal_after_feed_forward,
    "beside_self_attention": add_temporal_beside_self_attention,
}


@dataclass(frozen=True)
class Inflation:
    """How a method makes SD 1.x a video model.

    `attention` (a key of ATTENTION_PATTERNS) is the frame pattern of every attn1, in the UNet
    and the ControlNet; `temporal` (a key of TEMPORAL_LAYERS) is the layer added to the UNet's
    transformer blocks (the mid block's too when `temporal_in_mid_block`); the ControlNet gets none.
    """

    attention: str
    temporal: str
    temporal_in_mid_block: bool = True

    def apply(
        self, unet: torch.nn.Module, controlnet: torch.nn.Module | None, count: FrameCount, seed: int = 0
    ) -> None:
        """Inflate the networks in place, in float32, before freezing them (on the CPU, or on the meta
        device to see the structure). Random initial weights come from `seed` (the global random
        state is left alone), so an inflated model is reproducible.
        """
        add_temporal = TEMPORAL_LAYERS[self.temporal]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for network in (unet, controlnet):
                if network is None:
                    continue
                for name, block in list(network.named_modules()):
                    if not isinstance(block, BasicTransformerBlock):
                        continue
                    block.attn1.set_processor(CrossFrameAttnProcessor(self.attention, count))
                    if network is unet and (self.temporal_in_mid_block or not name.startswith("mid_block")):
                        with torch.device(block.attn1.to_q.weight.device):
                            add_temporal(block, count)
