"""Tiny real models of the UNet family for tests: built from configs, saved with save_pretrained
(safetensors), loaded by path.

Loading them goes through exactly the code path a Hub id or a local folder takes; nothing is
mocked. ZeroScope's layout (`build_text_to_video`, `TinySizes`), the CLIP tokenizer and the folder
writing are the embedded model's (`sma.embedded.architecture`); Stable Diffusion 1.x, ControlNet,
AnimateDiff's MotionAdapter and CLIP are built here. Show-1 is in `tiny_show1`, Wan in `tiny_wan`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ControlNetModel, MotionAdapter, UNet2DConditionModel

from sma.embedded.architecture import (
    TinySizes,
    build_text_to_video,
    clip_text_config,
    write_clip_tokenizer,
    write_model,
)

__all__ = [
    "TinySizes",
    "build_controlnet",
    "build_motion_adapter",
    "build_text_to_image",
    "build_text_to_video",
    "build_tiny_clip",
    "build_tiny_dino",
]


def build_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny CLIPModel (32 x 32 images), its tokenizer and image processor into `folder`."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = Path(folder)
    tokenizer = write_clip_tokenizer(folder)
    config = CLIPConfig(
        text_config=clip_text_config(tokenizer, 32, 2, 2, intermediate_size=37).to_dict(),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
        ),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_tiny_dino(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny ViTModel (32 x 32 images, with its pooler) and its image processor into `folder`, as
    facebook/dino-vitb16 is laid out."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2
    )
    torch.manual_seed(seed)
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return Path(folder)


def build_text_to_image(folder: Path, sizes: TinySizes = TinySizes(), seed: int = 0) -> Path:
    """Randomly initialised Stable-Diffusion-1.x-layout model (UNet2DConditionModel) in `folder`."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**_unet_2d_options(sizes))
    return write_model(folder, unet, "StableDiffusionPipeline", sizes)


def build_controlnet(folder: Path, sizes: TinySizes = TinySizes(), seed: int = 0) -> Path:
    """A ControlNetModel for `build_text_to_image`'s model, saved like `lllyasviel/sd-controlnet-depth`.

    diffusers starts its output convolutions (and the last one of the control image's embedding) at zero;
    they are drawn at random here so that the control matters, as in a trained ControlNet.
    """
    torch.manual_seed(seed)
    options = _unet_2d_options(sizes)
    del options["out_channels"], options["up_block_types"]
    controlnet = ControlNetModel(
        **options,
        conditioning_embedding_out_channels=tuple(sizes.vae_channels),  # downsamples pixels like the VAE
    )
    embedding = controlnet.controlnet_cond_embedding.conv_out
    for convolution in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block, embedding]:
        torch.nn.init.normal_(convolution.weight, std=0.1)
    controlnet.save_pretrained(folder)
    return Path(folder)


def build_motion_adapter(folder: Path, sizes: TinySizes = TinySizes(), seed: int = 0) -> Path:
    """A MotionAdapter for `build_text_to_image`'s model, saved on its own like
    `guoyww/animatediff-motion-adapter-v1-5-3` (config.json and the weights, no subfolder).

    One motion module per resolution level, as many as the UNet's layers per block, and one in
    the mid block (AnimateDiff v2 has it, v3 not), so that every place a motion module can sit is used.
    """
    torch.manual_seed(seed)
    adapter = MotionAdapter(
        block_out_channels=sizes.unet_channels,
        motion_layers_per_block=1,
        motion_num_attention_heads=2,
        motion_norm_num_groups=sizes.norm_groups,
        motion_max_seq_length=32,
        use_motion_mid_block=True,
    )
    adapter.save_pretrained(folder)
    return Path(folder)


def _unet_2d_options(sizes: TinySizes) -> dict:
    return {
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D",) * (len(sizes.unet_channels) - 1) + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (len(sizes.unet_channels) - 1),
        "block_out_channels": sizes.unet_channels,
        "layers_per_block": 1,
        "cross_attention_dim": sizes.text_width,
        "attention_head_dim": sizes.attention_head_dim,
        "norm_num_groups": sizes.norm_groups,
    }
