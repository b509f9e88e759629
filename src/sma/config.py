"""Run configuration: the sections every method shares, and the resolved whole saved in the run folder.

Each method owns its own section (its `Options` dataclass, recipe key = the method's name), and a
backbone may own one too (a `BackboneSection`); `sma.recipes` reads YAML recipes and overrides into a `TransferConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sma.video.atomic import atomic_output

if TYPE_CHECKING:  # torch loads when a dtype is asked for: the command line checks settings before that
    import torch

PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # recipe name: torch dtype
GENERATION_PRECISIONS = ("auto", *PRECISIONS)  # auto: fp16 on a GPU, fp32 on the CPU
TIMESTEP_WEIGHTS = ("none", "alpha_bar")  # sma.timestep_weight
# sma.preset: named settings of the `sma` section, each kept because a suite measured it (docs/results.md).
# low-leakage: VMC on the embedded hard world (results/hard-share, 40 pairs) left 0.009 less of the reference's
# texture in the output than VMC without SMA, with no motion or appearance change its intervals could tell from zero
SMA_PRESETS = {"low-leakage": {"share": 0.2, "timestep_weight": "alpha_bar"}}
MOTION_LOSSES = ("official", "sma", "both")  # flowmotion.motion_loss: the frame differences, SMA instead, or both


def precision_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision of PRECISIONS."""
    import torch

    return getattr(torch, PRECISIONS[precision])


def generation_dtype(precision: str, device: str | torch.device) -> torch.dtype:
    """The dtype of weights and latents while generating."""
    import torch

    if precision == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return precision_dtype(precision)


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
    preset: str | None = None  # a name of SMA_PRESETS: sets the keys it names (a recipe setting them otherwise fails)

    def build(self, **weights: float):
        """The SMA loss these settings describe (None when disabled); `weights` override
        `global_weight` / `local_weight` (DMT uses its own in feature space)."""
        from sma.spectral import SpectralMotionAlignment

        if not self.enabled:
            return None
        options = dataclasses.asdict(self)
        for name in ("enabled", "share", "timestep_weight", "preset"):
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
    # true: every layer recomputed in backward; false: none; "budget": the fewest that fit `memory_budget_gb`
    gradient_checkpointing: bool | str = False
    # GiB; set, it is the budget whatever `gradient_checkpointing` says; None: a CUDA card's memory less 10%
    # with `gradient_checkpointing: budget` (no limit on the CPU)
    memory_budget_gb: float | None = None
    compile: bool = False  # each repeated block through torch.compile (regional compilation)
    use_8bit_adam: bool = False
    checkpoint_every: int = 100

    @property
    def budgeted(self) -> bool:
        """Whether a memory budget picks the layers to recompute (`sma.memory_budget`)."""
        return self.gradient_checkpointing == "budget" or self.memory_budget_gb is not None


@dataclass
class GenerateConfig:
    # ddim | dpmsolver++; on flow-matching models (Wan) unipc | dpmsolver++ | flow-euler; flowmotion: euler
    sampler: str = "ddim"
    steps: int = 30
    guidance_scale: float = 12.0
    guidance_scale_2: float | None = None  # Wan 2.2 A14B's low-noise expert (WanPipeline's); None: guidance_scale
    negative_prompt: str = ""
    inversion_steps: int = 30
    noise_prior: float = 1.0  # weight p of the inverted latent: sqrt(p) z_inv + sqrt(1 - p) eps
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 weights and latents while generating
    compile: bool = False  # each repeated block of the denoiser through torch.compile (regional compilation)
    untuned: bool = False  # transfer also samples each target from the untuned model (untuned/), as a baseline


class BackboneSection:
    """A recipe section that a backbone owns (registered in `sma.backbones.sections`), as a dataclass of its
    settings with these hooks: the recipe reads it under its key like a shared section, and `sma.runs` asks it
    to check a run before anything loads and runs the stages it adds after generation (each writes a video of
    every target, NN-target.STAGE.mp4). The defaults check nothing and add no stage."""

    def validate(self) -> None:
        """Refuse settings that cannot work (a one-line `SmaError`), as the recipe is read."""

    def check(self, config: TransferConfig) -> None:
        """Refuse a run these settings cannot finish (another backbone, a missing model), before anything loads."""

    def later_stages(self) -> list[str]:
        """The stages this section runs after generation, in order."""
        return []

    def run_later_stages(
        self, model, keyframes: list[torch.Tensor], targets: list[str], negative_prompt: str, seed: int
    ) -> AbstractContextManager[Iterator[tuple[str, list[torch.Tensor]]]]:
        """Entered once the generated videos (`keyframes`, one per target) are written: prepares `model` for the
        stages, gives the iterator of (stage, the videos of every target in [-1, 1] on the CPU), and puts
        `model` back as it was on leaving."""
        return nullcontext(iter(()))


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
    last_image: str = ""  # the picture every target ends on (Wan 2.1 FLF2V), beside `image` or `target_images`
    seed: int = 0
    video: VideoConfig = field(default_factory=VideoConfig)
    sma: SmaConfig = field(default_factory=SmaConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    sections: dict[str, BackboneSection] = field(default_factory=dict)  # the backbones' sections, by recipe key
    options: Any = None  # the method's own section, an instance of its `Options` (None if it has none)

    def to_dict(self) -> dict[str, Any]:
        """The recipe that reproduces this run: shared sections, the backbones' sections, then the method's section
        under its name."""
        values = dataclasses.asdict(self)
        options, sections = values.pop("options"), values.pop("sections")
        values |= sections
        if options is not None:
            values[self.method] = options
        return values

    def later_stages(self) -> list[str]:
        """The stages the backbones' sections run after generation, in order (`BackboneSection.later_stages`)."""
        return [stage for section in self.sections.values() for stage in section.later_stages()]

    def save(self, path: Path) -> None:
        with atomic_output(path, overwrite=True) as temporary:
            temporary.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
