"""Run configuration: YAML recipes, overridden by flags, saved resolved in the run folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from sma.errors import SmaError
from sma.video.atomic import atomic_output

METHODS = ("vmc", "motiondirector", "tuneavideo", "controlvideo", "dmt")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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


@dataclass
class TrainConfig:
    steps: int = 400
    learning_rate: float = 1e-4
    batch_size: int = 1
    gradient_accumulation: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False
    use_8bit_adam: bool = False
    checkpoint_every: int = 100
    lora_rank: int = 32
    spatial_dropout: float = 0.2  # MotionDirector: chance to drop the spatial LoRA in the temporal path


@dataclass
class GenerateConfig:
    sampler: str = "ddim"  # ddim | dpmsolver++
    steps: int = 30
    guidance_scale: float = 12.0
    negative_prompt: str = ""
    inversion_steps: int = 30
    noise_prior: float = 1.0  # weight p of the inverted latent: sqrt(p) z_inv + sqrt(1 - p) eps
    precision: str = "fp32"  # fp32 | fp16 | bf16 weights and latents while generating


@dataclass
class ControlConfig:
    """ControlVideo's conditioning: a ControlNet and the per-frame depth of the reference."""

    controlnet: str = "lllyasviel/sd-controlnet-depth"  # Hub id or local folder
    video: str = ""  # depth maps of the reference (a video or a frame folder); wins over depth_model
    depth_model: str = ""  # transformers depth-estimation model (Hub id or folder) run on the reference
    scale: float = 1.0  # ControlNet conditioning scale


@dataclass
class DmtConfig:
    """DMT's zero-shot guidance (DESIGN.md §2); the SMA options other than its weights come from `sma`."""

    layers: list[str] = field(default_factory=lambda: ["up_blocks.1"])  # UNet modules whose outputs are compared
    guidance_fraction: float = 0.4  # guided share of the sampling steps, from the noisiest
    iterations: int = 10  # Adam iterations on the latent per guided step
    lr_start: float = 0.007  # Adam learning rate at the first guided step, linear to lr_end at the last
    lr_end: float = 0.004
    restart: bool = True  # after each step, noise back to its timestep and denoise it again
    low_pass_factor: int = 4  # initial latent: inverted latent shrunk this much per frame, plus the rest of noise
    keep_on_disk: bool = False  # inverted reference latents as safetensors files instead of in memory
    sma_global_weight: float = 0.4  # SMA in feature space, on features divided by the reference's RMS
    sma_local_weight: float = 0.2


@dataclass
class TransferConfig:
    method: str = "vmc"
    model: str = "cerspense/zeroscope_v2_576w"
    prompt: str = ""
    targets: list[str] = field(default_factory=list)
    seed: int = 0
    video: VideoConfig = field(default_factory=VideoConfig)
    sma: SmaConfig = field(default_factory=SmaConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    dmt: DmtConfig = field(default_factory=DmtConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        with atomic_output(path, overwrite=True) as temporary:
            temporary.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def validate(self) -> TransferConfig:
        if self.method not in METHODS:
            raise SmaError(f"unknown method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.train.mixed_precision not in ("no", "fp16", "bf16"):
            raise SmaError(f"mixed_precision must be no, fp16 or bf16, got {self.train.mixed_precision!r}")
        if self.generate.precision not in PRECISIONS:
            raise SmaError(
                f"generate.precision must be one of {', '.join(PRECISIONS)}, got {self.generate.precision!r}"
            )
        for name in ("frames", "height", "width", "stride"):
            if getattr(self.video, name) < 1:
                raise SmaError(f"video.{name} must be >= 1, got {getattr(self.video, name)}")
        if self.video.frames < 2:
            raise SmaError("video.frames must be >= 2: motion needs at least two frames")
        if self.train.steps < 1 or self.train.checkpoint_every < 1:
            raise SmaError("train.steps and train.checkpoint_every must be >= 1")
        if self.method == "controlvideo" and not (self.control.video or self.control.depth_model):
            raise SmaError(
                "controlvideo needs the depth of the reference: --control-video PATH (depth maps) "
                "or --depth-model ID_OR_PATH (a transformers depth-estimation model)"
            )
        if self.sma.enabled:
            self.check_sma()
        if self.method == "dmt":
            self.check_dmt()
        return self

    def check_dmt(self) -> None:
        dmt, generate = self.dmt, self.generate
        if generate.sampler != "ddim" or generate.inversion_steps != generate.steps:
            raise SmaError(
                "dmt samples with ddim over the timesteps of the inversion: set generate.sampler to ddim and "
                f"generate.inversion_steps equal to generate.steps (now {generate.sampler}, "
                f"{generate.inversion_steps} and {generate.steps})"
            )
        if not dmt.layers:
            raise SmaError("dmt.layers must name at least one UNet module (DMT uses up_blocks.1)")
        if not 0.0 <= dmt.guidance_fraction <= 1.0:
            raise SmaError(f"dmt.guidance_fraction must be in [0, 1], got {dmt.guidance_fraction}")
        if dmt.iterations < 0 or dmt.low_pass_factor < 1:
            raise SmaError("dmt.iterations must be >= 0 and dmt.low_pass_factor >= 1")

    def check_sma(self) -> None:
        from sma.spectral import SpectralMotionAlignment
        from sma.spectral.wavelet import max_levels

        options = dataclasses.asdict(self.sma)
        del options["enabled"]
        try:
            SpectralMotionAlignment(**options)
        except ValueError as error:
            raise SmaError(f"sma settings: {error}") from error
        most = max_levels(self.video.frames - 1, self.sma.wavelet, self.sma.boundary)
        if self.sma.levels > most:
            raise SmaError(
                f"sma.levels={self.sma.levels} is too many for {self.video.frames} frames: at most {most} "
                "(set sma.levels or video.frames)"
            )


def _merge(instance, values: dict[str, Any], where: str) -> None:
    known = {f.name: f for f in dataclasses.fields(instance)}
    for key, value in values.items():
        if key not in known:
            raise SmaError(f"unknown recipe key {where}{key!r}: valid keys here are {', '.join(known)}")
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise SmaError(f"recipe key {where}{key} must be a mapping of {', '.join(map(repr, known))}")
            _merge(current, value, f"{where}{key}.")
        else:
            setattr(instance, key, _checked(value, current, known[key].type, f"{where}{key}"))


def _checked(value: Any, current: Any, annotation: str, name: str) -> Any:
    """The value with the type of the default it replaces; a clear error otherwise."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise SmaError(f"recipe key {name} must be true or false, got {value!r}")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SmaError(f"recipe key {name} must be a number, got {value!r} (YAML needs 1.0e-4, not 1e-4)")
        return float(value)
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SmaError(f"recipe key {name} must be an integer, got {value!r}")
        return value
    if isinstance(current, str) and not isinstance(value, str):
        raise SmaError(f"recipe key {name} must be text, got {value!r}")
    if ("list" in annotation) and value is not None and not isinstance(value, list):
        raise SmaError(f"recipe key {name} must be a list, got {value!r}")
    return value


def load_config(recipe: Path | None = None, overrides: dict[str, Any] | None = None) -> TransferConfig:
    """Defaults, then the YAML recipe, then overrides with dotted keys ("train.steps": 10)."""
    config = TransferConfig()
    if recipe is not None:
        recipe = Path(recipe)
        if not recipe.is_file():
            raise SmaError(f"no recipe file at {recipe}")
        try:
            values = yaml.safe_load(recipe.read_text()) or {}
        except yaml.YAMLError as error:
            raise SmaError(f"{recipe} is not valid YAML: {str(error).splitlines()[0]}") from error
        if not isinstance(values, dict):
            raise SmaError(f"{recipe} must hold a mapping of recipe keys")
        _merge(config, values, "")
    nested: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    _merge(config, nested, "")
    return config.validate()
