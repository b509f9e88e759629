"""Real-size model structures on the meta device, and what each official method trains in them.

The configurations are those of the Hub checkpoints the recipes name; built under
`torch.device("meta")` they hold no memory, so a test can walk a 1.4-billion-parameter UNet
in about a second. The `*_official` functions restate, from a reading of each method's
official repository (docs/methods.md gives files and lines), which parameters that code
trains, written against diffusers' module names and independent of `sma`, so that the
project's choices can be checked against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import ControlNetModel, MotionAdapter, UNet2DConditionModel, UNet3DConditionModel, UNetMotionModel

# damo-vilab/text-to-video-ms-1.7b, unet/config.json (diffusers' UNet3DConditionModel defaults are these values).
MODELSCOPE_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 64,
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "downsample_padding": 1,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 32,
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
}
# cerspense/zeroscope_v2_576w is a fine-tune of ModelScope with the same UNet architecture.
ZEROSCOPE_UNET = dict(MODELSCOPE_UNET)

# stable-diffusion-v1-5, unet/config.json
SD15_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

# guoyww/animatediff-motion-adapter-v1-5-3, config.json (AnimateDiff v3: 8 heads, one transformer block per motion
# module, positions up to 32 frames, no motion module in the mid block, as configs/inference/inference-v3.yaml)
ANIMATEDIFF_V153_ADAPTER = {
    "block_out_channels": [320, 640, 1280, 1280],
    "conv_in_channels": None,
    "motion_layers_per_block": 2,
    "motion_max_seq_length": 32,
    "motion_mid_block_layers_per_block": 1,
    "motion_norm_num_groups": 32,
    "motion_num_attention_heads": 8,
    "motion_transformer_layers_per_block": 1,
    "motion_transformer_layers_per_mid_block": 1,
    "use_motion_mid_block": False,
}

# lllyasviel/sd-controlnet-depth, config.json (ControlNet 1.0 for SD 1.5, as thu-ml/controlvideo uses)
SD15_CONTROLNET_DEPTH = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "class_embed_type": None,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "controlnet_conditioning_channel_order": "rgb",
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "only_cross_attention": False,
    "resnet_time_scale_shift": "default",
    "upcast_attention": False,
    "use_linear_projection": False,
}


def on_meta(model_class, config: dict) -> torch.nn.Module:
    """The model of that class and configuration with every tensor on the meta device."""
    with torch.device("meta"):
        return model_class.from_config(config)


def zeroscope_unet() -> UNet3DConditionModel:
    return on_meta(UNet3DConditionModel, ZEROSCOPE_UNET)


def modelscope_unet() -> UNet3DConditionModel:
    return on_meta(UNet3DConditionModel, MODELSCOPE_UNET)


def sd15_unet() -> UNet2DConditionModel:
    return on_meta(UNet2DConditionModel, SD15_UNET)


def animatediff_unet() -> UNetMotionModel:
    """SD-1.5's UNet with the v1-5-3 motion modules, built as diffusers' AnimateDiffPipeline does."""
    with torch.device("meta"):
        adapter = MotionAdapter.from_config(ANIMATEDIFF_V153_ADAPTER)
        return UNetMotionModel.from_unet2d(sd15_unet(), adapter, load_weights=False)


def sd15_controlnet_depth() -> ControlNetModel:
    return on_meta(ControlNetModel, SD15_CONTROLNET_DEPTH)


def parameter_count(model: torch.nn.Module, names: set[str]) -> int:
    """Elements of the named parameters of `model`."""
    parameters = dict(model.named_parameters())
    return sum(parameters[name].numel() for name in names)


# --- VMC (HyeonHo99/Video-Motion-Customization train_inference.py:240; SMA's copy :335) ---


def vmc_official(unet: UNet3DConditionModel) -> set[str]:
    """Parameter names VMC trains: every parameter of a module whose name contains "temp_attentions"
    and ends in ".to_q", ".to_k" or ".to_v". The temporal transformer blocks have two
    self-attentions (attn1, attn2), so both are trained; `transformer_in` is not.
    """
    return {
        f"{module_name}.{parameter_name}"
        for module_name, module in unet.named_modules()
        if "temp_attentions" in module_name and module_name.endswith((".to_q", ".to_k", ".to_v"))
        for parameter_name, _ in module.named_parameters()
    }


# --- MotionDirector (showlab/MotionDirector utils/lora.py:321-375, MotionDirector_train.py:603-649) ---

MOTIONDIRECTOR_RANK = 32  # configs/config_single_video.yaml:36
LORA_SEARCH_CLASSES = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d)


def _lora_targets(model: torch.nn.Module, ancestor_class: str, name_parts: tuple[str, ...]) -> set[str]:
    """Layers under every module of class `ancestor_class` whose name below that module contains one of `name_parts`."""
    targets = set()
    for ancestor_name, ancestor in model.named_modules():
        if type(ancestor).__name__ != ancestor_class:
            continue
        for relative, module in ancestor.named_modules():
            if isinstance(module, LORA_SEARCH_CLASSES) and any(part in relative for part in name_parts):
                targets.add(f"{ancestor_name}.{relative}")
    return targets


def motiondirector_official(unet: UNet3DConditionModel) -> dict[str, set[str]]:
    """Module names that get a LoRA, per adapter.

    temporal: under every TransformerTemporalModel (the `temp_attentions` and `transformer_in`),
    layers whose name contains "attn1", "attn2" or "ff"; spatial: under every
    Transformer2DModel (`attentions`), layers whose name contains "attn1" or "ff".
    """
    return {
        "spatial": _lora_targets(unet, "Transformer2DModel", ("attn1", "ff")),
        "temporal": _lora_targets(unet, "TransformerTemporalModel", ("attn1", "attn2", "ff")),
    }


# --- VMC and MotionDirector on AnimateDiff: no official code; the same rules with the motion modules as the
# temporal transformers (AnimateDiffTransformer3D, two self-attentions attn1 and attn2 per block) ---


def vmc_animatediff(unet: UNetMotionModel) -> set[str]:
    """Parameters of every module whose name contains "motion_modules" and ends in ".to_q", ".to_k" or ".to_v"."""
    return {
        f"{module_name}.{parameter_name}"
        for module_name, module in unet.named_modules()
        if "motion_modules" in module_name and module_name.endswith((".to_q", ".to_k", ".to_v"))
        for parameter_name, _ in module.named_parameters()
    }


def motiondirector_animatediff(unet: UNetMotionModel) -> dict[str, set[str]]:
    """MotionDirector's rule with the motion modules (AnimateDiffTransformer3D) as the temporal transformers."""
    return {
        "spatial": _lora_targets(unet, "Transformer2DModel", ("attn1", "ff")),
        "temporal": _lora_targets(unet, "AnimateDiffTransformer3D", ("attn1", "attn2", "ff")),
    }


def lora_parameter_count(model: torch.nn.Module, module_names: set[str], rank: int = MOTIONDIRECTOR_RANK) -> int:
    """Elements of the LoRA factors (down r x in, up out x r, no bias) the official injector adds;
    it lowers the rank to min(in, out) where that is smaller (utils/lora.py:39-44)."""
    modules = dict(model.named_modules())
    total = 0
    for name in module_names:
        module = modules[name]
        if not isinstance(module, torch.nn.Linear):
            raise TypeError(f"{name} is a {type(module).__name__}; only Linear layers are expected here")
        r = min(rank, module.in_features, module.out_features)
        total += r * (module.in_features + module.out_features)
    return total


# --- Tune-A-Video and ControlVideo: SD 1.x inflated, with added temporal modules ---


@dataclass
class OfficialTrainable:
    """What an inflating method trains: parameters the diffusers model already has (by name) and
    parameters of the modules it adds (official name -> shape), named under the same block paths."""

    existing: set[str] = field(default_factory=set)
    added: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def count(self, models: dict[str, torch.nn.Module]) -> int:
        """Total elements; `existing` names carry a "<key>." prefix choosing the model in `models`."""
        total = sum(torch.Size(shape).numel() for shape in self.added.values())
        for name in self.existing:
            prefix, _, rest = name.partition(".")
            total += dict(models[prefix].named_parameters())[rest].numel()
        return total


def _transformer_blocks(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {name: module for name, module in model.named_modules() if type(module).__name__ == "BasicTransformerBlock"}


def _temporal_attention_shapes(block: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """attn_temp: a self-attention with attn1's width and heads, no q/k/v bias (SD's attention_bias is False)."""
    dim, inner = block.attn1.to_q.in_features, block.attn1.to_q.out_features
    return {
        "attn_temp.to_q.weight": (inner, dim),
        "attn_temp.to_k.weight": (inner, dim),
        "attn_temp.to_v.weight": (inner, dim),
        "attn_temp.to_out.0.weight": (dim, inner),
        "attn_temp.to_out.0.bias": (dim,),
    }


def tuneavideo_official(unet: UNet2DConditionModel) -> OfficialTrainable:
    """showlab/Tune-A-Video train_tuneavideo.py:116-119 with configs/*.yaml trainable_modules
    ("attn1.to_q", "attn2.to_q", "attn_temp"): every module whose name ends with one of them.
    Every transformer block (mid block included) gains attn_temp and norm_temp
    (tuneavideo/models/attention.py:192-202); norm_temp is not trained.
    """
    trainable = OfficialTrainable()
    for name, block in _transformer_blocks(unet).items():
        trainable.existing |= {f"unet.{name}.attn1.to_q.weight", f"unet.{name}.attn2.to_q.weight"}
        trainable.added |= {f"unet.{name}.{key}": shape for key, shape in _temporal_attention_shapes(block).items()}
    return trainable


def controlvideo_official(unet: UNet2DConditionModel, controlnet: ControlNetModel) -> OfficialTrainable:
    """thu-ml/controlvideo train.py:118-130 with configs/default/depth.yaml trainable_modules
    ("attn1.to_out", "attn_temp", "norm_temp", "conv_temp"), matched by name ending in both the
    UNet and the ControlNet. attn_temp and conv_temp exist only in the UNet's transformer
    blocks outside the mid block (libs/unet.py:133, 152, 197); no module is called norm_temp,
    so that entry matches nothing. The ControlNet's attn1.to_out is trained too.
    """
    trainable = OfficialTrainable()
    for prefix, network in (("unet", unet), ("controlnet", controlnet)):
        for name, block in _transformer_blocks(network).items():
            trainable.existing |= {f"{prefix}.{name}.attn1.to_out.0.weight", f"{prefix}.{name}.attn1.to_out.0.bias"}
            if prefix == "unet" and not name.startswith("mid_block"):
                dim = block.attn1.to_q.in_features
                added = _temporal_attention_shapes(block) | {
                    "conv_temp.weight": (dim, dim, 1, 1),
                    "conv_temp.bias": (dim,),
                }
                trainable.added |= {f"{prefix}.{name}.{key}": shape for key, shape in added.items()}
    return trainable


# --- DMT (diffusion-motion-transfer utilities/guidance_utils.py:204-251, configs/guidance_config.yaml) ---


def dmt_official_features(unet: UNet3DConditionModel) -> dict[str, str]:
    """The three tensors DMT's loss is summed over, with up_res_dict {1: [1]}: module -> what is read.

    Attention hooks are registered only for up_blocks[0] (guidance_utils.py:252), which has no
    attention in UNet3D, so none are active.
    """
    block = "up_blocks.1"
    features = {
        f"{block}.upsamplers.0": "output",
        f"{block}.resnets.1": "conv2 output, before the shortcut is added",
        f"{block}.temp_convs.1": "output",
    }
    missing = set(features) - dict(unet.named_modules()).keys()
    if missing:
        raise KeyError(f"not in this UNet: {sorted(missing)}")
    return features


def meta_text_to_video(unet: UNet3DConditionModel):
    """A real-size UNet, frozen as loading leaves it, in `sma`'s text-to-video model: enough for a
    method to choose its parameters (there is no VAE, text encoder or scheduler)."""
    from sma.backbones.text_to_video import TextToVideoModel

    unet.requires_grad_(False)
    return TextToVideoModel(unet=unet, vae=None, text_encoder=None, tokenizer=None, scheduler=None, source="meta")


# --- Wan 2.1 text-to-video (Wan-AI/Wan2.1-T2V-1.3B-Diffusers and -14B-Diffusers, transformer/config.json; the
# sizes of Wan's own configs, wan/configs/wan_t2v_1_3B.py and wan_t2v_14B.py: dim 1536 / 5120, ffn 8960 / 13824,
# 12 / 40 heads, 30 / 40 layers, text_dim 4096 (umt5-xxl), patch (1, 2, 2), 16 latent channels) ---

WAN_T2V_1_3B = {
    "added_kv_proj_dim": None,
    "attention_head_dim": 128,
    "cross_attn_norm": True,
    "eps": 1e-06,
    "ffn_dim": 8960,
    "freq_dim": 256,
    "image_dim": None,
    "in_channels": 16,
    "num_attention_heads": 12,
    "num_layers": 30,
    "out_channels": 16,
    "patch_size": [1, 2, 2],
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 1024,
    "text_dim": 4096,
}
WAN_T2V_14B = WAN_T2V_1_3B | {"ffn_dim": 13824, "num_attention_heads": 40, "num_layers": 40}


def wan_transformer(config: dict):
    from diffusers import WanTransformer3DModel

    return on_meta(WanTransformer3DModel, config)


def motionlora_official(transformer: torch.nn.Module, feed_forward: bool) -> set[str]:
    """Layers musubi-tuner's Wan LoRA adapts (networks/lora_wan.py: every Linear under a `WanAttentionBlock`,
    diffusers' `WanTransformerBlock`; embeddings, norms and the head excluded), kept to the two attentions
    (self_attn / cross_attn, diffusers' attn1 / attn2) unless the feed-forward is asked for too."""
    targets = set()
    for block_name, block in transformer.named_modules():
        if type(block).__name__ != "WanTransformerBlock":
            continue
        for relative, module in block.named_modules():
            part = relative.split(".")[0]
            if isinstance(module, torch.nn.Linear) and (part in ("attn1", "attn2") or (feed_forward and part == "ffn")):
                targets.add(f"{block_name}.{relative}")
    return targets


def meta_wan(transformer: torch.nn.Module, low_noise: torch.nn.Module | None = None, boundary_ratio=None):
    """A real-size Wan transformer (and Wan 2.2 A14B's low-noise expert), frozen as loading leaves it, in `sma`'s Wan
    model (no VAE, UMT5, scheduler)."""
    from sma.backbones.wan import WanModel

    for network in (transformer, low_noise):
        if network is not None:
            network.requires_grad_(False)
    return WanModel(
        unet=transformer,
        vae=None,
        text_encoder=None,
        tokenizer=None,
        scheduler=None,
        source="meta",
        unet_2=low_noise,
        boundary_ratio=boundary_ratio,
    )


# --- Wan image-to-video. Wan-AI/Wan2.2-TI2V-5B-Diffusers and Wan-AI/Wan2.1-I2V-14B-480P-Diffusers, transformer/ and
# vae/config.json as diffusers' scripts/convert_wan_to_diffusers.py writes them ("Wan2.2-TI2V-5B": dim 24 x 128 =
# 3072, ffn 14336, 30 layers, 48 channels in and out; "Wan-I2V-14B-480p": the 14B with in_channels 36, image_dim 1280,
# added_kv_proj_dim 5120; vae22_diffusers_config: base_dim 160, decoder_base_dim 256, z_dim 48, residual, 2x2 patches
# of 12 channels, 16x in space), Wan's own wan/configs/wan_ti2v_5B.py (vae_stride (4, 16, 16)) and the CLIP ViT-H/14
# the I2V pipeline encodes images with (laion/CLIP-ViT-H-14-laion2B-s32B-b79K: width 1280, 32 layers, 16 heads,
# MLP 5120, 224 px in 14 px patches: 257 states) ---

WAN_TI2V_5B = WAN_T2V_1_3B | {"ffn_dim": 14336, "num_attention_heads": 24, "in_channels": 48, "out_channels": 48}
WAN_I2V_14B = WAN_T2V_14B | {"in_channels": 36, "image_dim": 1280, "added_kv_proj_dim": 5120}
# Wan 2.2 A14B (Wan-AI/Wan2.2-T2V-A14B-Diffusers and -I2V-A14B-Diffusers; Wan's wan/configs/wan_t2v_A14B.py and
# wan_i2v_A14B.py, in musubi-tuner src/musubi_tuner/wan/configs/wan_t2v_A14B.py:23-34: each expert dim 5120, ffn 13824,
# 40 heads, 40 layers; in_dim 16 (T2V) or 36 (I2V: 16 + 4 mask + 16 image latents, no CLIP: no image_dim))
WAN22_T2V_A14B = WAN_T2V_14B
WAN22_I2V_A14B = WAN_T2V_14B | {"in_channels": 36}
WAN22_VAE = {"base_dim": 160, "decoder_base_dim": 256, "z_dim": 48, "is_residual": True, "in_channels": 12}
WAN22_VAE |= {"out_channels": 12, "patch_size": 2, "scale_factor_spatial": 16, "scale_factor_temporal": 4}
WAN22_VAE |= {"latents_mean": [0.0] * 48, "latents_std": [1.0] * 48}  # the values do not shape anything
CLIP_VIT_H = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 16}
CLIP_VIT_H |= {"image_size": 224, "patch_size": 14, "projection_dim": 1024, "hidden_act": "gelu"}
