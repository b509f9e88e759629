"""Run configuration: the sections every method shares, and the resolved whole saved in the run folder.

Each method owns its own section (its `Options` dataclass, recipe key = the method's name);
`sma.recipes` reads YAML recipes and overrides into a `TransferConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from sma.video.atomic import atomic_output

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
GENERATION_PRECISIONS = ("auto", *PRECISIONS)  # auto: fp16 on a GPU, fp32 on the CPU
TIMESTEP_WEIGHTS = ("none", "alpha_bar")  # sma.timestep_weight
MOTION_LOSSES = ("official", "sma", "both")  # flowmotion.motion_loss: the frame differences, SMA instead, or both


def generation_dtype(precision: str, device: str | torch.device) -> torch.dtype:
    """The dtype of weights and latents while generating."""
    if precision == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return PRECISIONS[precision]


@dataclass
class VideoConfig:
    frames: int = 8
    height: int = 320
    width: int = 576
    stride: int = 1
    start: int = 0


@dataclass
class SmaConfig:
    enabled: bool = True
    global_weight: float = 0.4
    local_weight: float = 0.2
    wavelet: str = "haar"
    levels: int = 2
    level_weights: list[float] | None = None
    boundary: str = "zero"
    delta: float = 0.05
    base: float = 1.0
    absolute_residuals: bool = True
    wrap_phase: bool = False
    scale_free: bool = False  # each term relative to the reference's own coefficients: no growth with size or frames
    share: float | None = None  # SMA rescaled each step to this share of the objective (0 < S < 1); None: fixed
    timestep_weight: str = "none"  # none | alpha_bar: each training sample's SMA times abar_t ((1 - s)^2 for flow)

    def build(self, **weights: float):
        """The SMA loss these settings describe (None when disabled); `weights` override
        `global_weight` / `local_weight` (DMT uses its own in feature space)."""
        from sma.spectral import SpectralMotionAlignment

        if not self.enabled:
            return None
        options = dataclasses.asdict(self)
        for name in ("enabled", "share", "timestep_weight"):
            del options[name]
        options.update(weights)
        return SpectralMotionAlignment(**options)

    def share_control(self):
        """The controller of SMA's share (`share`), fresh for a run; None when the weights are fixed."""
        from sma.objectives.total import ShareControl

        return ShareControl(self.share) if self.enabled and self.share is not None else None


@dataclass
class TrainConfig:
    steps: int = 400
    learning_rate: float = 1e-4
    batch_size: int = 1
    gradient_accumulation: int = 1
    max_grad_norm: float = 1.0  # 0 turns clipping off
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False
    use_8bit_adam: bool = False
    checkpoint_every: int = 100


@dataclass
class GenerateConfig:
    # ddim | dpmsolver++; on flow-matching models (Wan) unipc | dpmsolver++ | flow-euler; flowmotion: euler
    sampler: str = "ddim"
    steps: int = 30
    guidance_scale: float = 12.0
    negative_prompt: str = ""
    inversion_steps: int = 30
    noise_prior: float = 1.0  # weight p of the inverted latent: sqrt(p) z_inv + sqrt(1 - p) eps
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 weights and latents while generating
    untuned: bool = False  # transfer also samples each target from the untuned model (untuned/), as a baseline


SHOW1_STAGES = (
    "base",
    "interp",
    "sr1",
    "sr2",
)  # Show-1's cascade in order: keyframes, then 29 frames, 160x256, 320x576
SHOW1_STAGE_MODELS = {"interp": ("interpolation",), "sr1": ("image_sr", "sr1"), "sr2": ("sr2",)}  # keys of `show1`
SHOW1_MODEL_KEYS = tuple(key for keys in SHOW1_STAGE_MODELS.values() for key in keys)


@dataclass
class Show1Config:
    """Generation through Show-1's cascade after the base stage (a Show-1 `model` only); the stage models are
    Hub ids or folders, the step counts the authors'."""

    stages: str = "base"  # base | interp | sr1 | sr2: the last stage run
    interpolation: str = "showlab/show-1-interpolation"
    image_sr: str = "DeepFloyd/IF-II-L-v1.0"  # the first frame of sr1
    sr1: str = "showlab/show-1-sr1"
    sr2: str = "showlab/show-1-sr2"
    interp_steps: int = 75
    image_sr_steps: int = 70
    sr1_steps: int = 125
    sr2_steps: int = 50  # of which strength 0.8 runs: 40
    sr2_height: int = 320
    sr2_width: int = 576
    sr2_negative_prompt: str = "low resolution, blur"


@dataclass
class TransferConfig:
    method: str = "vmc"
    model: str = "cerspense/zeroscope_v2_576w"
    revision: str = ""  # branch, tag or commit of a Hub model; "" for the default branch
    motion_adapter: str = ""  # AnimateDiff MotionAdapter (Hub id or folder) for an SD-1.x `model`; "" for none
    prompt: str = ""  # what the reference shows; the caption of every reference that has none of its own
    references: list[Any] = field(default_factory=list)  # videos or folders: paths, or {path, prompt} (sma.references)
    targets: list[str] = field(default_factory=list)
    image: str = ""  # the picture every target starts from (image-to-video models); "" for none
    target_images: list[str] = field(default_factory=list)  # or one picture per target, in the order of `targets`
    seed: int = 0
    video: VideoConfig = field(default_factory=VideoConfig)
    sma: SmaConfig = field(default_factory=SmaConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    show1: Show1Config = field(default_factory=Show1Config)
    options: Any = None  # the method's own section, an instance of its `Options` (None if it has none)

    def to_dict(self) -> dict[str, Any]:
        """The recipe that reproduces this run: shared sections, then the method's section under its name."""
        values = dataclasses.asdict(self)
        options = values.pop("options")
        if options is not None:
            values[self.method] = options
        return values

    def save(self, path: Path) -> None:
        with atomic_output(path, overwrite=True) as temporary:
            temporary.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
