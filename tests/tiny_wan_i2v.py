"""Small Wan image-to-video models of the real classes, in the two layouts diffusers' WanImageToVideoPipeline runs.

- `build_wan_ti2v`: Wan 2.2 TI2V-5B's layout (Wan-AI/Wan2.2-TI2V-5B-Diffusers): a WanPipeline folder whose
  model_index.json says `expand_timesteps: true`, the transformer's input and output the VAE's latent channels, the
  Wan 2.2 VAE (residual blocks, 2x2 pixel patches: 16x in space).
- `build_wan_i2v`: Wan 2.1 I2V-14B's (Wan-AI/Wan2.1-I2V-14B-480P-Diffusers): a WanImageToVideoPipeline folder, the
  transformer's input 2 x latent channels + 4 mask channels, a CLIP vision encoder whose penultimate states feed
  the transformer's image embedder, a CLIP image processor at 32 px; or FLF2V-14B's, the same with image positions
  for a first and a last picture.
- `build_wan_i2v_a14b`: Wan 2.2 I2V-A14B's (Wan-AI/Wan2.2-I2V-A14B-Diffusers): I2V-14B's input without CLIP (no
  image encoder, no `image_dim`), two experts and `boundary_ratio` 0.9.
Saved with `save_pretrained` and loaded back through the code a Hub id takes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, UMT5EncoderModel

from tiny_wan import add_low_noise_expert, save_wan_folder, tiny_wan_vae, umt5_config, write_umt5_tokenizer

LATENT_CHANNELS = 4
TRANSFORMER = {"patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 8, "text_dim": 32}
TRANSFORMER |= {"freq_dim": 16, "ffn_dim": 32, "num_layers": 2, "rope_max_seq_len": 64}


def tiny_wan22_vae(seed: int = 0) -> AutoencoderKLWan:
    """Wan 2.2's VAE layout (residual, 2x2 patches, 12 input channels: 16x in space, 4x in time), 4 latent channels."""
    torch.manual_seed(seed)
    return AutoencoderKLWan(
        base_dim=8,
        decoder_base_dim=8,
        z_dim=LATENT_CHANNELS,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_spatial=16,
        latents_mean=[0.2, -0.1, 0.0, 0.3],
        latents_std=[1.2, 0.9, 1.4, 0.7],
    )


def _text(folder: Path, words: Sequence[str]) -> UMT5EncoderModel:
    tokenizer = write_umt5_tokenizer(folder / "tokenizer", words)
    return UMT5EncoderModel(umt5_config(tokenizer, width=32, layers=2, heads=4, feed_forward=64))


def update_model_index(folder: Path, **entries) -> Path:
    """`entries` added to (or replacing those of) the folder's model_index.json; returns the folder."""
    path = folder / "model_index.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | entries, indent=2))
    return folder


def build_wan_ti2v(folder: Path, seed: int = 0, words: Sequence[str] = ()) -> Path:
    """A randomly initialised model in Wan 2.2 TI2V-5B's layout in `folder`; returns it."""
    folder = Path(folder)
    text_encoder = _text(folder, words)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**TRANSFORMER, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS)
    save_wan_folder(folder, transformer, tiny_wan22_vae(seed), text_encoder)
    return update_model_index(folder, expand_timesteps=True, boundary_ratio=None, transformer_2=[None, None])


def build_wan_i2v(folder: Path, seed: int = 0, words: Sequence[str] = (), first_and_last: bool = False) -> Path:
    """A randomly initialised model in Wan 2.1 I2V-14B's layout in `folder`, or with `first_and_last` FLF2V-14B's
    (Wan-AI/Wan2.1-FLF2V-14B-720P-Diffusers: image positions for two pictures of CLIP's 17 tokens); returns it."""
    folder = Path(folder)
    text_encoder = _text(folder, words)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        **TRANSFORMER,
        in_channels=2 * LATENT_CHANNELS + 4,
        out_channels=LATENT_CHANNELS,
        image_dim=24,
        added_kv_proj_dim=16,  # the transformer's width, as 5120 is the 14B's
        pos_embed_seq_len=2 * 17 if first_and_last else None,  # (32 / 8)^2 patches and the class token, twice
    )
    vision = CLIPVisionConfig(
        hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2, image_size=32, patch_size=8
    )
    save_wan_folder(folder, transformer, tiny_wan_vae(seed), text_encoder)
    CLIPVisionModel(vision).save_pretrained(folder / "image_encoder")
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(folder / "image_processor")
    return update_model_index(
        folder,
        _class_name="WanImageToVideoPipeline",
        image_encoder=["transformers", "CLIPVisionModel"],
        image_processor=["transformers", "CLIPImageProcessor"],
        transformer_2=[None, None],
        boundary_ratio=None,
        expand_timesteps=False,
    )


def build_wan_i2v_a14b(folder: Path, seed: int = 0, words: Sequence[str] = ()) -> Path:
    """A randomly initialised model in Wan 2.2 I2V-A14B's layout in `folder`; returns it."""
    folder = Path(folder)
    text_encoder = _text(folder, words)
    torch.manual_seed(seed)
    channels = {"in_channels": 2 * LATENT_CHANNELS + 4, "out_channels": LATENT_CHANNELS}
    save_wan_folder(folder, WanTransformer3DModel(**TRANSFORMER, **channels), tiny_wan_vae(seed), text_encoder)
    update_model_index(
        folder,
        _class_name="WanImageToVideoPipeline",
        image_encoder=[None, None],
        image_processor=[None, None],
        expand_timesteps=False,
    )
    return add_low_noise_expert(folder, boundary_ratio=0.9, seed=seed + 1)
