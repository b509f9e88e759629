"""Small Show-1 models of the real classes, written in the Hub's folder layouts.

Tests load them through the code a Hub id takes. The base stage: `Show1UNet3DConditionModel`
at small widths, a small `T5EncoderModel`, a T5 tokenizer whose vocabulary is written here (a
unigram model saved as tokenizer.json: no sentencepiece file), the Hub's DPM-Solver++
scheduler settings and model_index.json. The cascade: the interpolation and sr1 UNets (the
same class, 7 and 6 input channels, sr1 with a noise-level embedding), DeepFloyd IF-II's
`UNet2DConditionModel`, each with DDPM schedulers as DeepFloyd IF ships them; sr2 is the
ZeroScope layout of `tiny_models`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers import __version__ as diffusers_version
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from sma.backbones.show1 import PIPELINE
from sma.backbones.show1_unet import Show1UNet3DConditionModel

SPECIAL_PIECES = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in T5
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789.,'-!?"

# the Hub's scheduler_config.json of showlab/show-1-base (it keeps DDPM keys DPM-Solver ignores: clip_sample)
SCHEDULER = {
    "algorithm_type": "dpmsolver++",
    "beta_end": 0.02,
    "beta_schedule": "squaredcos_cap_v2",
    "beta_start": 0.0001,
    "clip_sample": True,
    "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.95,
    "lambda_min_clipped": -5.1,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.5,
    "solver_order": 2,
    "solver_type": "midpoint",
    "steps_offset": 0,
    "thresholding": True,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_karras_sigmas": False,
    "variance_type": "fixed_small",
}

# a Show-1 base UNet at small widths: two levels, one layer each
UNET = {
    "block_out_channels": (32, 64),
    "down_block_types": ("ResnetDownsampleBlock3D", "SimpleCrossAttnDownBlock3D"),
    "up_block_types": ("SimpleCrossAttnUpBlock3D", "ResnetUpsampleBlock3D"),
    "layers_per_block": 1,
    "attention_head_dim": 8,
    "cross_attention_dim": 32,
    "addition_embed_type_num_heads": 4,
    "sample_size": 16,
}


def draw_temporal_outputs(unet: Show1UNet3DConditionModel) -> None:
    """diffusers starts the temporal convolutions' last layer at zero; a trained model's is not, so draw it."""
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "temp_convs" in name and ".conv4." in name and parameter.ndim > 1:
                parameter.normal_(std=1 / math.sqrt(parameter[0].numel()))


def write_t5_tokenizer(folder: str | Path, words: Sequence[str] = ()) -> T5Tokenizer:
    """A unigram T5 tokenizer: special pieces, `words` as whole pieces, then letters; saved and reloaded."""
    pieces = [(piece, 0.0) for piece in SPECIAL_PIECES]
    pieces += [("\u2581" + word, -1.0) for word in dict.fromkeys(words)]
    pieces += [("\u2581", -2.0)] + [(letter, -3.0) for letter in LETTERS]
    pieces += [("\u2581" + letter, -3.5) for letter in LETTERS]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=77)
    tokenizer.save_pretrained(folder)
    return T5Tokenizer.from_pretrained(folder)


def build_show1_base(
    folder: str | Path,
    seed: int = 0,
    text_width: int = 48,
    words: Sequence[str] = (),
    unet_config: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Randomly initialised Show-1 base in `folder` (unet/, text_encoder/, tokenizer/, scheduler/), weights
    saved in `dtype`. `unet_config` (default: the small `UNET`) gives another size, e.g. the real one."""
    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = write_t5_tokenizer(folder / "tokenizer", words)
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=text_width,
            d_kv=text_width // 4,
            d_ff=2 * text_width,
            num_layers=2,
            num_heads=4,
            feed_forward_proj="gated-gelu",
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    unet = Show1UNet3DConditionModel(**{**(unet_config or UNET), "encoder_hid_dim": text_width})
    draw_temporal_outputs(unet)
    text_encoder.to(dtype).save_pretrained(folder / "text_encoder")
    unet.to(dtype).save_pretrained(folder / "unet")
    (folder / "scheduler").mkdir(exist_ok=True)
    scheduler = {"_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.19.1", **SCHEDULER}
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2))
    model_index = {
        "_class_name": PIPELINE,
        "_diffusers_version": diffusers_version,
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"],
        "unet": ["showone.models.unet_3d_condition", "UNet3DConditionModel"],
    }
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=2))
    return folder


# DeepFloyd IF's super-resolution schedulers (diffusers' scripts/convert_if.py): sampling with the learned
# variance and dynamic thresholding, and the one that noises the upscaled conditioning image
IF_SAMPLING = {
    "variance_type": "learned_range",
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "epsilon",
    "thresholding": True,
    "dynamic_thresholding_ratio": 0.95,
    "sample_max_value": 1.0,
}
IF_NOISING = {"beta_schedule": "squaredcos_cap_v2"}


def save_pixel_stage(folder: Path, unet, pipeline: str, noising: bool) -> Path:
    """A pixel stage's folder: unet/, scheduler/ (DDPM), image_noising_scheduler/ for super-resolution."""
    draw_temporal_outputs(unet)
    unet.save_pretrained(folder / "unet")
    DDPMScheduler(**IF_SAMPLING).save_pretrained(folder / "scheduler")
    index = {
        "_class_name": pipeline,
        "_diffusers_version": diffusers_version,
        "scheduler": ["diffusers", "DDPMScheduler"],
    }
    if noising:
        DDPMScheduler(**IF_NOISING).save_pretrained(folder / "image_noising_scheduler")
        index["image_noising_scheduler"] = ["diffusers", "DDPMScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def build_show1_interpolation(
    folder: str | Path,
    seed: int = 1,
    text_width: int = 48,
    unet_config: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Show-1's interpolation stage: the base UNet taking 7 channels (noisy frames, blended frames, mask);
    `unet_config` (default: the small `UNET`) gives another size, weights saved in `dtype`."""
    torch.manual_seed(seed)
    config = {**(unet_config or UNET), "encoder_hid_dim": text_width, "in_channels": 7}
    unet = Show1UNet3DConditionModel(**config).to(dtype)
    return save_pixel_stage(Path(folder), unet, "TextToVideoIFInterpPipeline", False)


def build_show1_sr1(folder: str | Path, seed: int = 2, text_width: int = 48) -> Path:
    """Show-1's first super-resolution stage: 6 channels (noisy frames, upscaled frames) and a noise level."""
    torch.manual_seed(seed)
    unet = Show1UNet3DConditionModel(
        **{**UNET, "encoder_hid_dim": text_width, "in_channels": 6, "class_embed_type": "timestep"}
    )
    return save_pixel_stage(Path(folder), unet, "TextToVideoIFSuperResolutionPipeline_Cond", True)


def build_if_super_resolution(folder: str | Path, seed: int = 3, text_width: int = 48) -> Path:
    """DeepFloyd IF-II's layout at small widths: an image UNet2DConditionModel of IF's blocks on 6 channels
    with a noise-level embedding, T5 states projected for attention and pooled into the timestep embedding."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        in_channels=6,
        out_channels=6,
        block_out_channels=(32, 64),
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        layers_per_block=1,
        attention_head_dim=8,
        cross_attention_dim=32,
        cross_attention_norm="group_norm",
        encoder_hid_dim=text_width,
        addition_embed_type="text",
        addition_embed_type_num_heads=4,
        class_embed_type="timestep",
        act_fn="gelu",
        resnet_time_scale_shift="scale_shift",
    )
    return save_pixel_stage(Path(folder), unet, "IFSuperResolutionPipeline", True)
