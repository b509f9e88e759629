"""The UNet of Show-1's pixel stages (base, interpolation, first super-resolution), written for `sma`.

Show-1's keyframe model is DeepFloyd IF's pixel UNet inflated to video: IF's resnet and
"simple" cross-attention blocks (self-attention whose keys and values also take the
projected T5 tokens), each layer followed by a temporal convolution and a temporal
transformer, an attention-pooled T5 embedding added to the timestep embedding, and a
learned-variance output (6 channels for 3). Its parameter names and shapes are those of the
authors' class (`showone.models.unet_3d_condition.UNet3DConditionModel`), so the Hub
checkpoint loads strictly; `tests/data/show1_base_unet_state.json` records them.

The interpolation and super-resolution stages are the same class with other configs: more
input channels (the conditioning frames, and for interpolation a mask, are concatenated to
the noisy frames) and, for super-resolution, the noise level of the upscaled frames embedded
like a timestep and added to the timestep embedding (`class_embed_type` "timestep").

Frames are folded into the batch, (b, c, f, h, w) -> (b * f, c, h, w), as in diffusers'
UNet3DConditionModel; the temporal layers unfold them.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.activations import get_activation
from diffusers.models.attention_processor import Attention, AttnAddedKVProcessor2_0
from diffusers.models.embeddings import TextTimeEmbedding, TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D, TemporalConvLayer
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from diffusers.models.unets.unet_3d_condition import UNet3DConditionOutput
from torch import nn

DOWN_BLOCKS = ("ResnetDownsampleBlock3D", "SimpleCrossAttnDownBlock3D")  # without, with attention
UP_BLOCKS = ("ResnetUpsampleBlock3D", "SimpleCrossAttnUpBlock3D")
BASE_DOWN_BLOCKS = (DOWN_BLOCKS[0], *[DOWN_BLOCKS[1]] * 3)  # Show-1 base's (the defaults)
BASE_UP_BLOCKS = (*[UP_BLOCKS[1]] * 3, UP_BLOCKS[0])
# the settings every block reads (with "time_channels", the width of the timestep embedding)
BLOCK_SETTINGS = (
    "norm_eps",
    "norm_num_groups",
    "resnet_time_scale_shift",
    "act_fn",
    "resnet_out_scale_factor",
    "resnet_skip_time_act",
    "mid_block_scale_factor",
    "attention_head_dim",
    "cross_attention_dim",
    "cross_attention_norm",
)

# Settings of the authors' class that Show-1 base leaves at these values; others would build another network.
FIXED_SETTINGS = {
    "mid_block_type": "UNetMidBlock3DSimpleCrossAttn",
    "encoder_hid_dim_type": "text_proj",
    "addition_embed_type": "text",
    "center_input_sample": False,
    "class_embeddings_concat": False,
    "num_class_embeds": None,
    "projection_class_embeddings_input_dim": None,
    "time_embedding_type": "positional",
    "time_embedding_dim": None,
    "timestep_post_act": None,
    "time_cond_proj_dim": None,
    "addition_time_embed_dim": None,
    "only_cross_attention": False,
    "mid_block_only_cross_attention": None,
    "dual_cross_attention": False,
    "num_attention_heads": None,
    "transfromer_in_opt": False,
}


class Show1Layers(nn.Module):
    """Shared by every block: layer i is resnet i, temporal conv i and, in attention blocks,
    spatial attention i and temporal attention i."""

    def __init__(self, settings: dict, in_channels: list[int], channels: int, attention: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(resnet(settings, width, channels) for width in in_channels)
        self.temp_convs = nn.ModuleList(temporal_conv(settings, channels) for _ in in_channels)
        layers = len(in_channels) if attention else 0
        self.attentions = nn.ModuleList(spatial_attention(settings, channels) for _ in range(layers))
        self.temp_attentions = nn.ModuleList(temporal_attention(settings, channels) for _ in range(layers))

    def layer(self, index: int, hidden, temb, text, frames: int) -> torch.Tensor:
        hidden = self.temp_convs[index](self.resnets[index](hidden, temb), num_frames=frames)
        if self.attentions:
            hidden = self.attentions[index](hidden, encoder_hidden_states=text)
            hidden = self.temp_attentions[index](hidden, num_frames=frames).sample
        return hidden


class Show1DownBlock(Show1Layers):
    """ResnetDownsampleBlock3D / SimpleCrossAttnDownBlock3D: layers, then a resnet that halves the size."""

    def __init__(self, settings, in_channels: int, channels: int, layers: int, attention: bool, downsample: bool):
        super().__init__(settings, [in_channels] + [channels] * (layers - 1), channels, attention)
        self.downsamplers = nn.ModuleList([resnet(settings, channels, channels, down=True)] if downsample else [])

    def forward(self, hidden, temb, text, frames: int) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        outputs = []
        for index in range(len(self.resnets)):
            hidden = self.layer(index, hidden, temb, text, frames)
            outputs.append(hidden)
        for downsampler in self.downsamplers:
            hidden = downsampler(hidden, temb)
            outputs.append(hidden)
        return hidden, tuple(outputs)


class Show1UpBlock(Show1Layers):
    """ResnetUpsampleBlock3D / SimpleCrossAttnUpBlock3D: layers on the input joined with skips, then a
    resnet that doubles the size."""

    def __init__(self, settings, skip_channels: list[int], previous: int, channels: int, attention: bool, upsample):
        inputs = [(previous if index == 0 else channels) + skip for index, skip in enumerate(skip_channels)]
        super().__init__(settings, inputs, channels, attention)
        self.upsamplers = nn.ModuleList([resnet(settings, channels, channels, up=True)] if upsample else [])

    def forward(self, hidden, skips: tuple[torch.Tensor, ...], temb, text, frames: int) -> torch.Tensor:
        for index, skip in enumerate(reversed(skips)):
            hidden = self.layer(index, torch.cat([hidden, skip], dim=1), temb, text, frames)
        for upsampler in self.upsamplers:
            hidden = upsampler(hidden, temb)
        return hidden


class Show1MidBlock(nn.Module):
    """UNetMidBlock3DSimpleCrossAttn: resnet and temporal conv, then attention, temporal attention,
    resnet and temporal conv."""

    def __init__(self, settings: dict, channels: int) -> None:
        super().__init__()
        settings = {**settings, "resnet_out_scale_factor": settings["mid_block_scale_factor"]}
        self.resnets = nn.ModuleList(resnet(settings, channels, channels) for _ in range(2))
        self.temp_convs = nn.ModuleList(temporal_conv(settings, channels) for _ in range(2))
        self.attentions = nn.ModuleList([spatial_attention(settings, channels)])
        self.temp_attentions = nn.ModuleList([temporal_attention(settings, channels)])

    def forward(self, hidden, temb, text, frames: int) -> torch.Tensor:
        hidden = self.temp_convs[0](self.resnets[0](hidden, temb), num_frames=frames)
        hidden = self.attentions[0](hidden, encoder_hidden_states=text)
        hidden = self.temp_attentions[0](hidden, num_frames=frames).sample
        return self.temp_convs[1](self.resnets[1](hidden, temb), num_frames=frames)


def resnet(settings: dict, in_channels: int, out_channels: int, **resample) -> ResnetBlock2D:
    return ResnetBlock2D(
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=settings["time_channels"],
        eps=settings["norm_eps"],
        groups=settings["norm_num_groups"],
        time_embedding_norm=settings["resnet_time_scale_shift"],
        non_linearity=settings["act_fn"],
        output_scale_factor=settings["resnet_out_scale_factor"],
        skip_time_act=settings["resnet_skip_time_act"],
        **resample,
    )


def temporal_conv(settings: dict, channels: int) -> TemporalConvLayer:
    return TemporalConvLayer(channels, channels, dropout=0.1, norm_num_groups=settings["norm_num_groups"])


def spatial_attention(settings: dict, channels: int) -> Attention:
    """IF's attention: self-attention whose keys and values are joined by projections of the text tokens."""
    head_dim = settings["attention_head_dim"]
    return Attention(
        query_dim=channels,
        cross_attention_dim=channels,
        heads=channels // head_dim,
        dim_head=head_dim,
        added_kv_proj_dim=settings["cross_attention_dim"],
        norm_num_groups=settings["norm_num_groups"],
        bias=True,
        upcast_softmax=True,
        cross_attention_norm=settings["cross_attention_norm"],
        processor=AttnAddedKVProcessor2_0(),
    )


def temporal_attention(settings: dict, channels: int) -> TransformerTemporalModel:
    """Self-attention along the frames (two of them, diffusers' default); the authors pass
    `attention_head_dim` as the number of heads, so heads are `channels / attention_head_dim` wide."""
    heads = settings["attention_head_dim"]
    return TransformerTemporalModel(
        num_attention_heads=heads,
        attention_head_dim=channels // heads,
        in_channels=channels,
        num_layers=1,
        cross_attention_dim=settings["cross_attention_dim"],
        norm_num_groups=settings["norm_num_groups"],
    )


def down_path(
    settings: dict, widths: list[int], layers: list[int], block_types: tuple[str, ...]
) -> tuple[nn.ModuleList, list[int]]:
    """The down blocks, and the channels of the skip connections they leave for the up path, in order (the first
    is conv_in's output)."""
    blocks, skip_channels = nn.ModuleList(), [widths[0]]
    for index, block_type in enumerate(block_types):
        last = index == len(widths) - 1
        previous = widths[max(index - 1, 0)]
        blocks.append(
            Show1DownBlock(settings, previous, widths[index], layers[index], block_type == DOWN_BLOCKS[1], not last)
        )
        skip_channels += [widths[index]] * (layers[index] + (not last))
    return blocks, skip_channels


def up_path(
    settings: dict, widths: list[int], layers: list[int], block_types: tuple[str, ...], skip_channels: list[int]
) -> nn.ModuleList:
    """The up blocks, each joining its input with the last skip connections the down path left."""
    blocks, skip_channels, previous = nn.ModuleList(), list(skip_channels), widths[-1]
    for index, block_type in enumerate(block_types):
        channels = widths[-1 - index]
        skips = [skip_channels.pop() for _ in range(layers[-1 - index] + 1)]
        last = index == len(widths) - 1
        blocks.append(Show1UpBlock(settings, skips, previous, channels, block_type == UP_BLOCKS[1], upsample=not last))
        previous = channels
    return blocks


class Show1UNet3DConditionModel(ModelMixin, ConfigMixin):
    """Show-1's pixel UNet: (b, in_channels, f, h, w) pixels, timesteps and T5 states -> (b, 6, f, h, w).

    The config is the Hub's `unet/config.json`; every setting is accepted by name, and those
    that Show-1's stages do not use must keep their values (see FIXED_SETTINGS).
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = 64,
        in_channels: int = 3,
        out_channels: int = 6,
        down_block_types: tuple[str, ...] = BASE_DOWN_BLOCKS,
        mid_block_type: str = "UNetMidBlock3DSimpleCrossAttn",
        up_block_types: tuple[str, ...] = BASE_UP_BLOCKS,
        block_out_channels: tuple[int, ...] = (320, 640, 960, 1280),
        layers_per_block: int | tuple[int, ...] = 3,
        attention_head_dim: int = 64,
        cross_attention_dim: int = 1280,
        cross_attention_norm: str | None = "group_norm",
        encoder_hid_dim: int = 4096,
        encoder_hid_dim_type: str = "text_proj",
        addition_embed_type: str = "text",
        addition_embed_type_num_heads: int = 64,
        act_fn: str = "gelu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        resnet_time_scale_shift: str = "scale_shift",
        resnet_skip_time_act: bool = False,
        resnet_out_scale_factor: float = 1.0,
        mid_block_scale_factor: float = 1.0,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        conv_in_kernel: int = 3,
        conv_out_kernel: int = 3,
        downsample_padding: int = 1,
        transformer_layers_per_block: int = 1,
        use_linear_projection: bool = False,
        upcast_attention: bool = False,
        center_input_sample: bool = False,
        class_embed_type: str | None = None,
        class_embeddings_concat: bool = False,
        num_class_embeds: int | None = None,
        projection_class_embeddings_input_dim: int | None = None,
        time_embedding_type: str = "positional",
        time_embedding_dim: int | None = None,
        time_embedding_act_fn: str | None = None,
        timestep_post_act: str | None = None,
        time_cond_proj_dim: int | None = None,
        addition_time_embed_dim: int | None = None,
        only_cross_attention: bool = False,
        mid_block_only_cross_attention: bool | None = None,
        dual_cross_attention: bool = False,
        num_attention_heads: int | None = None,
        transfromer_in_opt: bool = False,  # sic: the authors' spelling, as in the Hub config
    ) -> None:
        super().__init__()
        check_supported(locals())
        widths = list(block_out_channels)
        time_channels = 4 * widths[0]
        arguments = locals()
        settings = {name: arguments[name] for name in BLOCK_SETTINGS} | {"time_channels": time_channels}
        layers = [layers_per_block] * len(widths) if isinstance(layers_per_block, int) else list(layers_per_block)
        self.conv_in = nn.Conv2d(in_channels, widths[0], conv_in_kernel, padding=(conv_in_kernel - 1) // 2)
        self.time_proj = Timesteps(widths[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(widths[0], time_channels, act_fn=act_fn)
        # super-resolution: the noise level of the conditioning frames, embedded as a timestep
        self.class_embedding = TimestepEmbedding(widths[0], time_channels, act_fn=act_fn) if class_embed_type else None
        self.time_embed_act = get_activation(time_embedding_act_fn) if time_embedding_act_fn else None
        self.encoder_hid_proj = nn.Linear(encoder_hid_dim, cross_attention_dim)
        self.add_embedding = TextTimeEmbedding(encoder_hid_dim, time_channels, num_heads=addition_embed_type_num_heads)

        self.down_blocks, skip_channels = down_path(settings, widths, layers, down_block_types)
        self.mid_block = Show1MidBlock(settings, widths[-1])
        self.up_blocks = up_path(settings, widths, layers, up_block_types, skip_channels)
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, widths[0], eps=norm_eps)
        self.conv_act = get_activation(act_fn)
        self.conv_out = nn.Conv2d(widths[0], out_channels, conv_out_kernel, padding=(conv_out_kernel - 1) // 2)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet3DConditionOutput | tuple[torch.Tensor]:
        """`sample` (b, c, f, h, w), one timestep or one per sample, T5 states (b, tokens, encoder_hid_dim);
        `class_labels` (b,) the noise levels of a super-resolution stage's conditioning frames."""
        batch, _, frames, height, width = sample.shape
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(batch)
        embedding = self.time_embedding(self.time_proj(timesteps).to(sample.dtype))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("this UNet embeds a noise level: pass `class_labels`")
            levels = torch.as_tensor(class_labels, device=sample.device).reshape(-1).expand(batch)
            embedding = embedding + self.class_embedding(self.time_proj(levels).to(sample.dtype))
        # the pooled T5 states join the timestep embedding; the projected ones are what attention sees
        embedding = embedding + self.add_embedding(encoder_hidden_states)
        if self.time_embed_act is not None:
            embedding = self.time_embed_act(embedding)
        embedding = embedding.repeat_interleave(frames, dim=0)
        text = self.encoder_hid_proj(encoder_hidden_states).repeat_interleave(frames, dim=0)

        hidden = self.conv_in(sample.transpose(1, 2).reshape(batch * frames, -1, height, width))
        skips = [hidden]
        for block in self.down_blocks:
            hidden, outputs = block(hidden, embedding, text, frames)
            skips.extend(outputs)
        hidden = self.mid_block(hidden, embedding, text, frames)
        for block in self.up_blocks:
            count = len(block.resnets)
            hidden = block(hidden, tuple(skips[-count:]), embedding, text, frames)
            del skips[-count:]
        hidden = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        output = hidden.reshape(batch, frames, *hidden.shape[1:]).transpose(1, 2)
        return UNet3DConditionOutput(sample=output) if return_dict else (output,)


def check_supported(config: dict) -> None:
    """The class builds Show-1's pixel UNets only: refuse, by name, settings that would need another network."""
    changed = {name: config[name] for name, value in FIXED_SETTINGS.items() if config[name] != value}
    problems = [f"{name}={value!r} (needs {FIXED_SETTINGS[name]!r})" for name, value in changed.items()]
    if config["class_embed_type"] not in (None, "timestep"):
        problems.append(f"class_embed_type={config['class_embed_type']!r} (needs None or 'timestep')")
    layers = config["layers_per_block"]
    if not isinstance(layers, int) and len(layers) != len(config["down_block_types"]):
        problems.append(f"{len(layers)} layers_per_block for {len(config['down_block_types'])} down blocks")
    down, up, widths = config["down_block_types"], config["up_block_types"], config["block_out_channels"]
    problems += [f"down block {name!r}" for name in down if name not in DOWN_BLOCKS]
    problems += [f"up block {name!r}" for name in up if name not in UP_BLOCKS]
    if not len(down) == len(up) == len(widths):
        problems.append(f"{len(down)} down blocks, {len(up)} up blocks, {len(widths)} widths")
    if problems:
        raise ValueError(f"not a Show-1 UNet config: unsupported {'; '.join(problems)}")
