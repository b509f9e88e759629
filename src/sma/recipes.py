"""YAML recipes and overrides -> a validated `TransferConfig`.

Defaults, then the recipe, then overrides with dotted keys ("train.steps": 10). The method
named in the result owns one more section, under its own name (its dataclass in `sma.methods.options`),
and checks its own settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from sma.backbones.sections import default_sections
from sma.config import GENERATION_PRECISIONS, SMA_PRESETS, TIMESTEP_WEIGHTS, GenerateConfig, TransferConfig
from sma.errors import SmaError
from sma.methods import METHODS, method_class
from sma.methods.options import OPTIONS
from sma.references import check_entries

MAX_VIDEO_SIDE = 4096  # Wan 2.2 TI2V-5B's native 704 x 1280 is the largest backbone's
MAX_VIDEO_PIXELS = 2**29  # 537M: Wan 2.2's native 121 x 704 x 1280 is 109M
MAX_TRAIN_STEPS = 100_000  # a day or more a run at real size; beyond, a typo (1e12 gave an ETA of 741 million hours)
MAX_SAMPLING_STEPS = 1000  # no scheduler of the supported models has more training timesteps to step through


def load_config(recipe: Path | None = None, overrides: dict[str, Any] | None = None) -> TransferConfig:
    """Defaults, then the YAML recipe, then overrides with dotted keys; validated. Every key, type and shared setting
    is checked before the method's module, and with it torch, is imported: a mistake is said in a second."""
    values = recipe_values(recipe, overrides)
    config = checked_config(values)
    if "sampler" not in values.get("generate", {}):
        config.generate.sampler = method_class(config.method).samplers[0]  # ddim, or unipc on flow-matching models
    return validate(config)


def recipe_values(recipe: Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe's nested values with the dotted overrides set in them (None: not overridden)."""
    values = read_recipe(recipe) if recipe is not None else {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return values


def checked_config(values: dict[str, Any]) -> TransferConfig:
    """The config of `values` with every key, type and shared setting checked, and no method module (no torch)
    imported: the method's own checks and default sampler come in `load_config`."""
    config = TransferConfig(sections=default_sections())
    at_native_size(values, config.model)
    with_sma_preset(values)
    method = values.get("method", config.method)
    if not isinstance(method, str) or method not in METHODS:
        raise SmaError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    config.method = method
    options = OPTIONS.get(method)
    config.options = options() if options is not None else None
    merge(config, values)
    check_shared(config)
    return config


def with_sma_preset(values: dict[str, Any]) -> None:
    """`sma.preset` sets the keys its preset names; a recipe or flag that sets one of them to another value is
    refused rather than silently losing to it (a saved run's recipe holds both, the same: it loads again)."""
    sma = values.get("sma")
    if not isinstance(sma, dict) or sma.get("preset") is None:
        return
    name = sma["preset"]
    if name not in SMA_PRESETS:
        raise SmaError(f"unknown `sma.preset` {name!r}: expected one of {', '.join(SMA_PRESETS)}")
    for key, value in SMA_PRESETS[name].items():
        if sma.get(key, value) != value:
            raise SmaError(f"`sma.preset: {name}` sets `sma.{key}` to {value}, not {sma[key]}: set one of them")
        sma[key] = value


NATIVE_SIZE_KEY = "sma_native_size"  # in model_index.json: {"frames": F, "height": H, "width": W} it was trained at


def at_native_size(values: dict[str, Any], default_model: str) -> None:
    """The shipped models by name (`embedded`, `embedded-hard`), and the video size a model names as its own
    where the recipe and overrides set none: the embedded models are 64x64 (8 and 16 frames), and at the
    default 320x576 a step took 200 s on two cores."""
    from sma.embedded import SHIPPED_MODELS, embedded_model

    model = values.get("model", default_model)
    if not isinstance(model, str):
        return
    if model in SHIPPED_MODELS:
        values["model"] = model = embedded_model(SHIPPED_MODELS[model])
    index = Path(model).expanduser() / "model_index.json"
    try:
        native = json.loads(index.read_text()).get(NATIVE_SIZE_KEY) if index.is_file() else None
    except (OSError, ValueError, AttributeError):
        return
    video = values.setdefault("video", {}) if isinstance(native, dict) else None
    if not isinstance(video, dict):
        return  # no size named, or a video section merge() will refuse with its own message
    for key in ("frames", "height", "width"):
        if key in native:
            video.setdefault(key, native[key])


RECIPES = Path(__file__).parent / "configs"  # the shipped recipes, by name: vmc-zeroscope, ...


def shipped_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES.glob("*.yaml"))


def read_recipe(recipe: Path | str) -> dict[str, Any]:
    """A recipe file, or a shipped recipe by name (`vmc-zeroscope`)."""
    recipe = Path(recipe)
    if (
        not recipe.is_file() and recipe.suffix not in (".yaml", ".yml") and len(recipe.parts) == 1
    ):  # a name (may hold dots)
        if not (RECIPES / f"{recipe}.yaml").is_file():
            raise SmaError(
                f"no recipe file or shipped recipe {str(recipe)!r}: shipped are {', '.join(shipped_recipes())}"
            )
        recipe = RECIPES / f"{recipe}.yaml"
    if not recipe.is_file():
        raise SmaError(f"no recipe file at {recipe}")
    try:
        values = yaml.safe_load(recipe.read_text()) or {}
    except yaml.YAMLError as error:
        raise SmaError(f"{recipe} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(values, dict):
        raise SmaError(f"{recipe} must hold a mapping of recipe keys")
    return values


def merge(config: TransferConfig, values: dict[str, Any]) -> None:
    """Shared keys into the config, the backbones' sections into theirs, the section named after the method into
    its options."""
    shared = [f.name for f in dataclasses.fields(config) if f.name not in ("options", "sections")]
    shared += list(config.sections)
    for key, value in values.items():
        if key in config.sections:
            _merge_section(config.sections[key], value, f"{key}.")
        elif key == config.method and config.options is not None:
            _merge_section(config.options, value, f"{key}.")
        elif key in METHODS:
            if key == config.method:
                raise SmaError(f"the {key} method has no settings of its own: remove the recipe section {key!r}")
            raise SmaError(f"recipe section {key!r} configures the {key} method, but this run uses {config.method}")
        elif key in shared:
            _merge_section(config, {key: value}, "")
        else:
            own = [config.method] if config.options is not None else []
            raise SmaError(f"unknown recipe key {key!r}: valid keys here are {', '.join([*shared, *own])}")


def _merge_section(instance, values: Any, where: str) -> None:
    for key, value in check_section(instance, values, where).items():
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current):
            _merge_section(current, value, f"{where}{key}.")
        else:
            setattr(instance, key, value)


def check_section(instance, values: Any, where: str, what: str = "recipe key") -> dict[str, Any]:
    """`values` checked against the fields of the dataclass `instance`: known keys, each with the type of its
    default (a nested section is left to its caller). `what` names the keys in messages (a benchmark suite's
    schema is checked here too)."""
    known = {f.name: f for f in dataclasses.fields(instance)}
    if not isinstance(values, dict):
        raise SmaError(f"{what} {where.rstrip('.')} must be a mapping of {', '.join(map(repr, known))}")
    checked = {}
    for key, value in values.items():
        if key not in known:
            raise SmaError(f"unknown {what} {where}{key}: valid keys here are {', '.join(known)}")
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current):
            checked[key] = value
        else:
            checked[key] = _checked(value, current, str(known[key].type), f"{where}{key}", what)
    return checked


OPTIONAL_EXAMPLES = {"float": 0.0, "int": 0, "str": "", "bool": False}  # values of the types a None default stands for


def _checked(value: Any, current: Any, annotation: str, name: str, what: str = "recipe key") -> Any:
    """The value with the type of the default it replaces (or, for a default of None, of its annotation); a clear
    error otherwise."""
    if current is None and value is not None:
        declared = annotation.replace(" ", "").removesuffix("|None").removeprefix("None|")
        if declared in OPTIONAL_EXAMPLES:
            return _checked(value, OPTIONAL_EXAMPLES[declared], declared, name, what)
    if isinstance(current, bool) and isinstance(value, str) and "str" in annotation:  # true, false or a word
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise SmaError(f"{what} {name} must be true or false, got {value!r}")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SmaError(f"{what} {name} must be a number, got {value!r} (YAML needs 1.0e-4, not 1e-4)")
        if not math.isfinite(value):
            raise SmaError(f"`{name}` must be a finite number, got {value!r}")
        return float(value)
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SmaError(f"{what} {name} must be an integer, got {value!r}")
        return value
    if isinstance(current, str) and not isinstance(value, str):
        raise SmaError(f"{what} {name} must be text, got {value!r}")
    if isinstance(current, dict) and not isinstance(value, dict):
        raise SmaError(f"{what} {name} must be a mapping, got {value!r}")
    if ("list" in annotation) and value is not None and not isinstance(value, list):
        raise SmaError(f"{what} {name} must be a list, got {value!r}")
    item = re.search(r"list\[(\w+)\]", annotation)
    if isinstance(value, list) and item and item[1] in OPTIONAL_EXAMPLES:  # each item of a list of numbers or text
        example = OPTIONAL_EXAMPLES[item[1]]
        return [_checked(entry, example, item[1], f"{name}[{index}]", what) for index, entry in enumerate(value)]
    return value


def check_shared(config: TransferConfig) -> None:
    """Checks of the shared sections that need no method."""
    video, train = config.video, config.train
    if not 0 <= config.seed < 2**63:
        raise SmaError(f"`seed` must be from 0 to 2**63 - 1 (what torch and numpy take), got {config.seed}")
    if train.mixed_precision not in ("no", "fp16", "bf16"):
        raise SmaError(f"`train.mixed_precision` must be no, fp16 or bf16, got {train.mixed_precision!r}")
    if config.generate.precision not in GENERATION_PRECISIONS:
        raise SmaError(
            f"`generate.precision` must be one of {', '.join(GENERATION_PRECISIONS)}, got {config.generate.precision!r}"
        )
    for name in ("frames", "height", "width", "stride"):
        if getattr(video, name) < 1:
            raise SmaError(f"`video.{name}` must be >= 1, got {getattr(video, name)}")
    if video.frames < 2:
        raise SmaError("`video.frames` must be >= 2: motion needs at least two frames")
    if max(video.height, video.width) > MAX_VIDEO_SIDE:
        raise SmaError(
            f"`video.height` x `video.width` is {video.height} x {video.width}: over {MAX_VIDEO_SIDE} pixels a side, "
            "more than any backbone takes (a typo?)"
        )
    if video.frames * video.height * video.width > MAX_VIDEO_PIXELS:
        raise SmaError(
            f"`video.frames` x `video.height` x `video.width` is {video.frames} x {video.height} x {video.width}: over "
            f"{MAX_VIDEO_PIXELS:,} pixels no backbone could take, and reading the reference would exhaust the memory"
        )
    if train.steps < 1:
        raise SmaError(f"`train.steps` must be >= 1, got {train.steps}")
    if train.steps > MAX_TRAIN_STEPS:
        raise SmaError(
            f"`train.steps` is {train.steps}: more than {MAX_TRAIN_STEPS} would not finish (the official recipes "
            "train 300-1000 steps; a run resumed with more steps continues where it stopped)"
        )
    if train.gradient_checkpointing not in (True, False, "budget"):
        said = train.gradient_checkpointing
        raise SmaError(f"`train.gradient_checkpointing` must be true, false or budget, got {said!r}")
    if train.memory_budget_gb is not None and train.memory_budget_gb <= 0:
        raise SmaError(f"`train.memory_budget_gb` must be above 0, got {train.memory_budget_gb}")
    if train.checkpoint_every < 1:
        raise SmaError(f"`train.checkpoint_every` must be >= 1, got {train.checkpoint_every}")
    if train.learning_rate <= 0:
        raise SmaError(f"`train.learning_rate` must be above 0, got {train.learning_rate}")
    for section in config.sections.values():
        section.validate()
    check_entries(config.references)


def validate(config: TransferConfig) -> TransferConfig:
    """Checks that ask the method (its samplers, what it trains and takes), then the method's own."""
    check_generation(config.generate, method_class(config.method).samplers)
    if not method_class(config.method).trains:
        check_nothing_trained(config)
    method = method_class(config.method)
    if method.uses_sma(config):
        check_sma(config)
    if config.motion_adapter and not method.takes_motion_adapter:
        runs = ", ".join(name for name in METHODS if method_class(name).takes_motion_adapter)
        raise SmaError(f"{config.method} does not run on AnimateDiff (it runs {runs}): leave `motion_adapter` empty")
    if (config.image or config.target_images or config.last_image) and not method.takes_images:
        takers = ", ".join(name for name in METHODS if method_class(name).takes_images)
        raise SmaError(f"{config.method} generates from text alone ({takers} start from an image): leave `image` empty")
    method.validate(config)
    return config


def check_generation(generate: GenerateConfig, samplers: tuple[str, ...]) -> None:
    """Generation settings, checked before training rather than after it; `samplers` are those the method's
    models take."""

    for name in ("steps", "inversion_steps"):
        if not 1 <= getattr(generate, name) <= MAX_SAMPLING_STEPS:
            raise SmaError(
                f"`generate.{name}` must be from 1 to {MAX_SAMPLING_STEPS} (the training timesteps of the "
                f"models' schedulers), got {getattr(generate, name)}"
            )
    if not 0.0 <= generate.noise_prior <= 1.0:
        raise SmaError(f"`generate.noise_prior` must be in [0, 1], got {generate.noise_prior}")
    if generate.sampler not in samplers:
        raise SmaError(f"`generate.sampler` must be one of {', '.join(samplers)}, got {generate.sampler!r}")


def check_nothing_trained(config: TransferConfig) -> None:
    """A method that trains nothing refuses training settings rather than ignoring them."""
    from sma.config import TrainConfig

    default = TrainConfig()
    names = [f.name for f in dataclasses.fields(default)]
    changed = [f"`train.{name}`" for name in names if getattr(config.train, name) != getattr(default, name)]
    if changed:
        raise SmaError(f"{config.method} trains nothing, so {', '.join(changed)} would have no effect: remove it")


def check_sma(config: TransferConfig) -> None:
    from sma.spectral.wavelet import max_levels

    try:
        config.sma.build()
        config.sma.share_control()
    except ValueError as error:
        raise SmaError(f"sma settings: {error}") from error
    if config.sma.timestep_weight not in TIMESTEP_WEIGHTS:
        raise SmaError(
            f"`sma.timestep_weight` must be one of {', '.join(TIMESTEP_WEIGHTS)}, got {config.sma.timestep_weight!r}"
        )
    if config.sma.timestep_weight != "none" and not method_class(config.method).trains:
        raise SmaError(
            f"`sma.timestep_weight` weighs training steps by their noise, and {config.method} trains nothing: remove it"
        )
    frames, unit = method_class(config.method).motion_frames(config)
    most = max_levels(frames - 1, config.sma.wavelet, config.sma.boundary)
    if config.sma.levels > most:
        raise SmaError(
            f"`sma.levels` {config.sma.levels} is too many for {frames} {unit}: at most {most} "
            "(lower `sma.levels` or take more `video.frames`)"
        )


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested recipe values -> dotted keys, the form `load_config` takes as overrides."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
