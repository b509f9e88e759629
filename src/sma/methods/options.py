"""Each method's own recipe section (under the method's name), by method; a method without one is absent.

Apart from the methods' modules and light to import: a recipe's keys are checked against these before any model
library loads, so a misspelt key is said in a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MotionDirectorOptions:
    lora_rank: int = 32
    lora_dropout: float = 0.1  # on the LoRA's output, as the official LoRA layer
    spatial_dropout: float = 0.2  # chance per step to drop the spatial LoRA (and skip the spatial loss)


@dataclass
class ControlVideoOptions:
    """The ControlNet and the per-frame depth of the reference it is conditioned on."""

    controlnet: str = "lllyasviel/sd-controlnet-depth"  # Hub id or local folder
    video: str = ""  # depth maps of the reference (a video or a frame folder); wins over depth_model
    depth_model: str = ""  # transformers depth-estimation model (Hub id or folder) run on the reference
    scale: float = 1.0  # ControlNet conditioning scale


# The official taps (up_res_dict {1: [1]}): the upsampler output, resnets[1]'s conv2 output before
# the shortcut is added (a forward hook on conv2 reads exactly that), temp_convs[1]'s output.
OFFICIAL_LAYERS = ("up_blocks.1.upsamplers.0", "up_blocks.1.resnets.1.conv2", "up_blocks.1.temp_convs.1")


@dataclass
class DMTOptions:
    """DMT's zero-shot guidance; the SMA options other than its weights come from the `sma` section."""

    layers: list[str] = field(default_factory=lambda: list(OFFICIAL_LAYERS))  # UNet modules whose outputs are compared
    guidance_fraction: float = 0.4  # guided share of the sampling steps, from the noisiest
    iterations: int = 10  # Adam iterations on the latent per guided step
    lr_start: float = 0.007  # Adam learning rate at the first guided step, linear to lr_end at the last
    lr_end: float = 0.004
    restart: bool = True  # after each step, noise back to its timestep and denoise it again
    low_pass_factor: int = 4  # initial latent: low frequencies (frames shrunk this much) of the re-noised reference
    keep_on_disk: bool = False  # inverted reference latents as safetensors files instead of in memory
    precision: str = "fp16"  # autocast of every UNet pass: fp16 (gradient scaler; fp32 without CUDA) | bf16 | fp32
    # recompute each UNet layer in the guidance's backward: the same gradients in less memory (not in the official
    # code, which keeps every activation up to up_blocks.1: over 24 GB at 24 frames of 320x576)
    # "budget": the fewest layers whose estimate fits `memory_budget_gb` (sma.memory_budget), planned at the first
    # guided step
    gradient_checkpointing: bool | str = True
    memory_budget_gb: float | None = None  # GiB; set, it implies "budget"; None: a CUDA card's memory less 10%
    sma_global_weight: float = 0.4  # SMA in feature space, on features divided by the reference's RMS
    sma_local_weight: float = 0.2


@dataclass
class MotionLoRAOptions:
    lora_rank: int = 32
    lora_alpha: float = 32.0  # LoRA scale alpha / rank
    feed_forward: bool = False  # LoRA on the feed-forward layers too
    timestep_shift: float = 3.0  # k of the training sigmas (musubi-tuner's discrete_flow_shift)
    sample_shift: float = 3.0  # flow shift of the sampler (diffusers: 3.0 for 480P, 5.0 for 720P)
    sma_first_latent_frame: bool = False  # SMA on latent frame 0 (the first video frame alone) too
    appearance_debiasing: bool = False
    appearance_dropout: float = 0.2  # chance per step to drop the appearance set (MotionDirector's spatial dropout)
    experts: str = "both"  # Wan 2.2 A14B: whose LoRA trains, high | low | both (each on its own timesteps)


@dataclass
class FlowMotionOptions:
    """The official settings (run.py's defaults); SMA's own settings come from the `sma` section."""

    guidance_steps: int = 10  # the first sampling steps, each preceded by Adam on the latent
    iterations: int = 3  # Adam iterations per guided step
    learning_rate: float = 0.003
    latent_weight: float = 20.0  # alpha: MSE of the two denoised estimates
    difference_weight: float = 5.0  # beta: MSE of their frame differences (consecutive, and every pair)
    regulate_scale: float = 0.1  # the velocity's part across the mean velocity so far is scaled by this
    source: str = "latent_prediction"  # the reference noised and denoised at each step | clean_latent: itself
    motion_loss: str = "official"  # official: the difference term | sma: SMA instead of it | both
    flow_shift: float | None = None  # shift of a flow model's sigmas; None: the model's own (Wan 1.3B: 3.0)
    text_tokens: int = 226  # Wan: prompts padded to this many tokens (run.py: encode_prompt's default; WanPipeline 512)
    text_precision: str = "fp16"  # Wan: UMT5's precision on a GPU (run.py: the whole pipeline in fp16; Wan's own bf16)


OPTIONS: dict[str, type] = {
    "motiondirector": MotionDirectorOptions,
    "controlvideo": ControlVideoOptions,
    "dmt": DMTOptions,
    "motionlora": MotionLoRAOptions,
    "flowmotion": FlowMotionOptions,
}
