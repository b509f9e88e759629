"""AnimateDiff: a Stable Diffusion 1.x model with a motion adapter, as diffusers' UNetMotionModel.

The image model's weights are loaded unchanged (SD-1.5, a DreamBooth fine-tune, a local
folder); the motion modules come from a diffusers `MotionAdapter` saved on its own (e.g.
guoyww/animatediff-motion-adapter-v1-5-3). The spatial layers are the image model's
transformers (`attentions.M`), the temporal ones the motion modules (`motion_modules.M`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel

from sma.backbones.hub import load_component
from sma.backbones.latent_video import LatentVideoModel, load_text_and_vae, lora_target_patterns
from sma.errors import SmaError

# The scheduler AnimateDiff's own code trains and samples with (`DDIMScheduler(**noise_scheduler_kwargs)`,
# configs/inference/inference-v3.yaml, configs/training/v1/training.yaml): SD's betas spaced linearly, not SD's
# scaled-linear schedule; DDIMScheduler's defaults otherwise.
NOISE_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear", "steps_offset": 1}
NOISE_SCHEDULE |= {"clip_sample": False}


# A Linear layer of a motion module in diffusers' names: the module's place, then the layer inside it.
MOTION_LAYER = re.compile(r"((?:down_blocks|up_blocks)\.\d+|mid_block)\.motion_modules\.(\d+)\.(.+)")
ATTENTION_LAYER = re.compile(r"(transformer_blocks\.\d+)\.attn([12])\.(to_q|to_k|to_v|to_out\.0)")


def motion_lora_keys(layer: str) -> tuple[str, str]:
    """(down, up) keys of a LoRA on a motion-module Linear `layer` (diffusers' name) in AnimateDiff's MotionLoRA
    layout (guoyww/AnimateDiff's v2_lora_*.ckpt; ComfyUI-AnimateDiff-Evolved loads it).

    AnimateDiff names a motion module's transformer `temporal_transformer` and its two attentions
    `attention_blocks.0` and `.1` (diffusers: `attn1`, `attn2`); MotionLoRA keys an attention's LoRA as its
    processor's `to_q_lora` ... `to_out_lora` with `down`/`up` weights. The loaders turn a key into the
    layer's weight name by deleting "processor.", "_lora", "down." and "up." (and reading `to_out` as
    `to_out.0`), so a Linear outside the attentions (the feed-forward) is keyed `<layer>_lora.down.weight`.
    """
    match = MOTION_LAYER.fullmatch(layer)
    if match is None:
        raise SmaError(f"{layer} is not in a motion module: AnimateDiff's MotionLoRA holds only motion-module layers")
    place, index, inner = match.groups()
    module = f"{place}.motion_modules.{index}.temporal_transformer"
    attention = ATTENTION_LAYER.fullmatch(inner)
    if attention is not None:
        block, number, projection = attention.groups()
        projection = projection.removesuffix(".0")
        name = f"{module}.{block}.attention_blocks.{int(number) - 1}.processor.{projection}_lora"
    else:
        name = f"{module}.{inner}_lora"
    return f"{name}.down.weight", f"{name}.up.weight"


def animatediff_unet(unet: UNet2DConditionModel, adapter: MotionAdapter) -> UNetMotionModel:
    """The image UNet with the adapter's motion modules, as diffusers' AnimateDiffPipeline builds it."""
    try:
        return UNetMotionModel.from_unet2d(unet, adapter)
    except ValueError as error:  # diffusers: "Incompatible Motion Adapter, got different number of ..."
        raise SmaError(f"the motion adapter does not fit this Stable Diffusion model: {error}") from error


@dataclass
class AnimateDiffModel(LatentVideoModel):
    unet: UNetMotionModel
    # q/k/v of both self-attentions across frames (attn1, attn2) of every motion module: VMC's set, in the
    # attentions AnimateDiff's MotionLoRA adapts.
    temporal_attention_pattern = re.compile(r"(.*\.)?motion_modules\.\d+\.transformer_blocks\.\d+\.attn[12]\.to_[qkv]")
    # The temporal transformers are the motion modules.
    lora_patterns = lora_target_patterns(r"motion_modules\.\d+")

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        motion_adapter: str,
        device: str | torch.device = "cpu",
        revision: str | None = None,
    ) -> AnimateDiffModel:
        """An SD-1.x model (Hub id at `revision`, or folder) and a MotionAdapter (Hub id or folder), in float32."""
        if Path(motion_adapter).expanduser().is_file():
            raise SmaError(
                f"`motion_adapter` {motion_adapter} is a file: sma reads motion adapters in diffusers layout (a folder "
                "or Hub id with config.json and the weights, e.g. guoyww/animatediff-motion-adapter-v1-5-3)"
            )
        image_unet = load_component(UNet2DConditionModel, source, "unet", revision)
        adapter = load_component(MotionAdapter, motion_adapter, "")
        components = load_text_and_vae(source, revision)
        components["scheduler"] = DDIMScheduler(**NOISE_SCHEDULE)
        model = cls(unet=animatediff_unet(image_unet, adapter), **components)
        return model.freeze().to(device)

    @classmethod
    def pretrained_weights(cls, source: str, revision: str | None = None, **sources: str) -> dict[str, torch.Tensor]:
        """The motion modules' weights, read from the motion adapter alone: they have the same names in the
        adapter as in the UNetMotionModel built from it."""
        return load_component(MotionAdapter, sources["motion_adapter"], "").state_dict()

    @classmethod
    def comfyui_lora_keys(cls, layer: str) -> tuple[str, str]:
        return motion_lora_keys(layer)

    @property
    def max_frames(self) -> int:
        """The motion modules' positional encoding covers this many frames."""
        return self.unet.config.motion_max_seq_length

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        frames = latents.shape[2]
        if frames > self.max_frames:
            raise SmaError(f"this motion adapter takes at most {self.max_frames} frames, got {frames} (`video.frames`)")
        text = text_embeddings.to(latents.dtype).repeat_interleave(frames, dim=0)  # one copy per frame
        return self.unet(latents, timesteps, encoder_hidden_states=text).sample
