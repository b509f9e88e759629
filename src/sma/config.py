"""Run configuration: YAML recipes, overridden by flags, saved resolved in the run folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sma.errors import SmaError
from sma.video.atomic import atomic_output

METHODS = ("vmc", "motiondirector")


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
        for name in ("frames", "height", "width", "stride"):
            if getattr(self.video, name) < 1:
                raise SmaError(f"video.{name} must be >= 1, got {getattr(self.video, name)}")
        if self.video.frames < 2:
            raise SmaError("video.frames must be >= 2: motion needs at least two frames")
        if self.train.steps < 1 or self.train.checkpoint_every < 1:
            raise SmaError("train.steps and train.checkpoint_every must be >= 1")
        return self


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
            setattr(instance, key, value)


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
