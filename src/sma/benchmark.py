"""Benchmark suites: many transfers from one YAML file, every output measured, one table with intervals.

A suite names references (video files, or synthetic clips whose true motion is known), their
prompts and target prompts, methods, SMA variants and seeds. Every (reference, method,
variant, seed) is a cell: one `sma.runs.transfer` into OUT/cells/<cell>/, generating every
target of its reference. Each output is scored against the reference (robust motion fidelity,
one- and two-sided; the Lucas-Kanade motion fidelity of DMT's code for comparison; flow
similarity; on synthetic references the ground-truth metrics: trajectory error, and for
targets given as colours and shapes each object's error found by colour, appearance accuracy
and the reference's colours left; the camera's error and the reference's background texture
left, where the backgrounds show them) and appended to OUT/results.jsonl as its cell
finishes, so a rerun with `resume` skips finished cells and redoes an interrupted one.
OUT/summary.md holds means with 95% bootstrap intervals per method and variant, and paired
differences against the same method without SMA (same reference, target and seed), overall
and per reference (kind of motion); OUT/summary.png plots the means.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sma.errors import SmaError
from sma.evaluation import SUMMARY, GroundTruth, Target, current_keys, score
from sma.evaluation.scoring import TEXTURES

SUITE_KEYS = (
    "name",
    "model",
    "world",
    "seeds",
    "steps",
    "size",
    "frames",
    "overrides",
    "methods",
    "variants",
    "references",
    "clips",
)
REFERENCE_KEYS = ("name", "path", "synthetic", "prompt", "targets")
OBJECT_KEYS = (
    "shape",
    "colour",
    "motion",
    "start",
    "end",
    "size",
    "turns",
    "amplitude",
    "scale",
    "rotation",
    "timing",
    "body",
    "body_amount",
    "body_cycles",
)
SCENE_KEYS = ("objects", "background", "background_colours", "pan", "zoom", "camera_timing", "seed")
SYNTHETIC_KEYS = OBJECT_KEYS + SCENE_KEYS
TARGET_KEYS = ("colour", "shape", "objects", "background", "texture", "background_colours")
METHOD_KEYS = ("method", "recipe", "overrides", "variants")
VARIANT_KEYS = ("name", "sma", "scale")
RESULTS_FILE = "results.jsonl"


@dataclass(frozen=True)
class Reference:
    """A reference clip: a video file (`path`) or a synthetic clip (`synthetic`, `synthetic_video` arguments)."""

    name: str
    prompt: str
    targets: tuple[Target, ...]
    path: Path | None = None
    synthetic: dict[str, Any] | None = None


@dataclass(frozen=True)
class MethodEntry:
    """A method of the suite under its own name (`method` is the registry's name: several entries may run one
    method with different overrides)."""

    name: str
    method: str
    recipe: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    variants: tuple[str, ...] | None = None  # the suite's variants it runs; None: all


@dataclass(frozen=True)
class Variant:
    """SMA settings over the method's: `sma` keys set, then both weights multiplied by `scale`. `tune` False
    (the built-in "untuned"): the backbone generates as the method would, with nothing trained."""

    name: str
    sma: dict[str, Any]
    scale: float | None = None
    tune: bool = True

    @property
    def uses_sma(self) -> bool:
        return self.tune and self.sma.get("enabled", True)


BUILTIN_VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("sma", {"enabled": True}),
        Variant("nosma", {"enabled": False}),
        Variant("global-only", {"enabled": True, "local_weight": 0.0}),
        Variant("local-only", {"enabled": True, "global_weight": 0.0}),
        Variant("untuned", {"enabled": False}, tune=False),  # nothing trained: the control of the training itself
    )
}


@dataclass(frozen=True)
class Cell:
    id: str
    reference: Reference
    method: MethodEntry
    variant: Variant
    seed: int


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    model: str | None
    seeds: tuple[int, ...]
    references: tuple[Reference, ...]
    methods: tuple[MethodEntry, ...]
    variants: tuple[Variant, ...]
    overrides: dict[str, Any]
    world: str = "simple"  # the embedded model run when neither the suite nor the command names one
    settings: dict[str, Any] = field(default_factory=dict)  # over the suite's and methods' keys (`with_settings`)

    def cells(self) -> list[Cell]:
        """Seed outermost, so the pairs a paired difference needs finish early in a long suite."""
        from sma.run_folder import slug

        return [
            Cell(
                slug(f"{reference.name}-{method.name}-{variant.name}-seed{seed}", 120), reference, method, variant, seed
            )
            for seed in self.seeds
            for reference in self.references
            for method in self.methods
            for variant in self.variants
            if method.variants is None or variant.name in method.variants
        ]


def select(
    suite: Suite,
    *,
    seeds: list[int] | None = None,
    references: list[str] | None = None,
    methods: list[str] | None = None,
    variants: list[str] | None = None,
) -> Suite:
    """Part of a suite (a pilot, or one lane of several run in parallel): only the given seeds, references, methods
    and variants. Cells keep their ids and settings, so the whole suite resumed into the same folder runs only the
    rest."""
    chosen = {}
    for key, wanted, present in (
        ("seeds", seeds, suite.seeds),
        ("references", references, [reference.name for reference in suite.references]),
        ("methods", methods, [method.name for method in suite.methods]),
        ("variants", variants, [variant.name for variant in suite.variants]),
    ):
        unknown = [str(item) for item in wanted or () if item not in present]
        if unknown:
            raise SmaError(f"the suite has no {key} {', '.join(unknown)} (it has {', '.join(map(str, present))})")
        chosen[key] = wanted or present
    return replace(
        suite,
        seeds=tuple(seed for seed in suite.seeds if seed in chosen["seeds"]),
        references=tuple(reference for reference in suite.references if reference.name in chosen["references"]),
        methods=tuple(method for method in suite.methods if method.name in chosen["methods"]),
        variants=tuple(variant for variant in suite.variants if variant.name in chosen["variants"]),
    )


def with_settings(suite: Suite, settings: dict[str, Any]) -> Suite:
    """The suite with recipe keys (dotted) set in every cell over its own and its methods' overrides (the
    variants' SMA keys still apply): one suite run under other settings, into another folder."""
    return replace(suite, settings={**suite.settings, **settings})


def read_suite(path: Path, clips: Path | None = None) -> Suite:
    """Read and check a suite YAML. Its reference paths are relative to `clips` (a folder), else to its own
    `clips:` key (relative to the suite's folder), else to the suite's folder. Every mistake is one SmaError."""
    path = Path(path)
    if not path.is_file():
        raise SmaError(f"no suite file at {path}")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SmaError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from error
    values = _mapping(values, SUITE_KEYS, "the suite")
    for required in ("methods", "variants", "references"):
        if not values.get(required):
            raise SmaError(f"the suite names no {required}: add a list of them under {required}")
    here = path.parent.resolve()  # absolute, so a cell's fingerprint does not depend on the working folder
    clips_folder = (
        Path(clips).resolve() if clips is not None else (here / _text(values.get("clips", "."), "clips")).resolve()
    )
    if not clips_folder.is_dir():
        where = "--clips" if clips is not None else "the suite's clips"
        raise SmaError(f"{where}: no folder at {clips_folder} (the reference videos' folder)")
    overrides = _overrides(values.get("overrides", {}), "overrides")
    for key, dotted in (("steps", "train.steps"), ("frames", "video.frames")):
        if key in values:
            overrides[dotted] = _integer(values[key], key)
    if "size" in values:
        height, width = _size(values["size"])
        overrides["video.height"], overrides["video.width"] = height, width
    if "world" in values:  # the frames and size of an embedded model's world, unless the suite sets them
        from sma.embedded.world import WORLDS

        if values["world"] not in WORLDS:
            raise SmaError(f"suite key world must be one of {', '.join(WORLDS)}, got {values['world']!r}")
        world = WORLDS[values["world"]]
        overrides.setdefault("video.frames", world.frames)
        overrides.setdefault("video.height", world.size)
        overrides.setdefault("video.width", world.size)
    seeds = values.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        raise SmaError(f"suite key seeds must be a list of integers, got {seeds!r}")
    entries = enumerate(_list(values, "references"))
    references = tuple(_reference(entry, index, clips_folder) for index, entry in entries)
    methods = _methods(values["methods"], here)
    variants = tuple(_variant(entry) for entry in _list(values, "variants"))
    for kind, names in (("reference", [r.name for r in references]), ("variant", [v.name for v in variants])):
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise SmaError(f"{kind} names must differ: {', '.join(repeated)} appears more than once")
    if sum(variant.tune and not variant.uses_sma for variant in variants) > 1:
        raise SmaError("at most one variant may turn SMA off: it is the baseline of the paired differences")
    for method in methods:
        unknown = sorted(set(method.variants or ()) - {variant.name for variant in variants})
        if unknown:
            raise SmaError(f"methods.{method.name}.variants: the suite has no variant {', '.join(unknown)}")
    model = values.get("model")
    if model is not None:
        model = _text(model, "model")
        model = str(here / model) if (here / model).exists() else model
    return Suite(
        name=_text(values.get("name", path.stem), "name"),
        path=path,
        model=model,
        seeds=tuple(_integer(seed, "seeds") for seed in seeds),
        references=references,
        methods=methods,
        variants=variants,
        overrides=overrides,
        world=values.get("world", Suite.world),
    )


def _mapping(values: Any, known: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise SmaError(f"{where} must be a mapping of {', '.join(known)}")
    unknown = [str(key) for key in values if key not in known]
    if unknown:
        raise SmaError(
            f"unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)} in {where}: valid keys are {', '.join(known)}"
        )
    return values


def _list(values: dict[str, Any], key: str) -> list:
    if not isinstance(values[key], list):
        raise SmaError(f"suite key {key} must be a list")
    return values[key]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise SmaError(f"suite key {name} must be text, got {value!r}")
    return value


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SmaError(f"suite key {name} must be an integer, got {value!r}")
    return value


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, list) and len(value) == 2:
        return _integer(value[0], "size"), _integer(value[1], "size")
    raise SmaError(f"suite key size must be an integer or [height, width], got {value!r}")


def _overrides(values: Any, where: str) -> dict[str, Any]:
    """Recipe keys, nested or dotted, as dotted overrides (checked later by `load_config`)."""
    from sma.recipes import flatten

    if not isinstance(values, dict):
        raise SmaError(f"suite key {where} must be a mapping of recipe keys")
    return flatten(values)


def _reference(entry: Any, index: int, clips: Path) -> Reference:
    where = f"references[{index}]"
    entry = _mapping(entry, REFERENCE_KEYS, where)
    if ("path" in entry) == ("synthetic" in entry):
        raise SmaError(f"{where} needs either a path or a synthetic clip")
    if "path" in entry:
        path = clips / _text(entry["path"], f"{where}.path")
        if not path.exists():
            raise SmaError(
                f"{where}: no reference video at {path} (relative to --clips, else the suite's clips: folder, "
                "else the suite's own folder)"
            )
        if "prompt" not in entry:
            raise SmaError(f"{where} ({path.name}) needs a prompt that says what the video shows")
        name, synthetic, prompt = path.stem, None, _text(entry["prompt"], f"{where}.prompt")
    else:
        synthetic, default_prompt = _synthetic(entry["synthetic"], f"{where}.synthetic")
        objects = synthetic["objects"]
        name, path = "+".join(dict.fromkeys(obj.motion for obj in objects)), None
        prompt = _text(entry.get("prompt", default_prompt), f"{where}.prompt")
    targets = entry.get("targets")
    if not isinstance(targets, list) or not targets:
        raise SmaError(f"{where} needs a list of target prompts (targets)")
    return Reference(
        name=_text(entry.get("name", name), f"{where}.name"),
        prompt=prompt,
        targets=tuple(_target(target, f"{where}.targets[{number}]") for number, target in enumerate(targets)),
        path=path,
        synthetic=synthetic,
    )


def _synthetic(values: Any, where: str) -> tuple[dict[str, Any], str]:
    """`synthetic_video` arguments from one object's keys or a list of `objects`, with the scene's keys; and the
    clip's describing prompt."""
    from sma.video.synthetic import MovingObject, describe

    values = dict(_mapping(values, SYNTHETIC_KEYS, where))
    scene = {key: values.pop(key) for key in SCENE_KEYS if key in values}
    listed = scene.pop("objects", None)
    if listed is not None and values:
        raise SmaError(f"{where}: give the objects' keys inside objects, not beside it ({', '.join(values)})")
    if listed is not None and (not isinstance(listed, list) or not listed):
        raise SmaError(f"{where}.objects must be a list of objects")
    entries = [values] if listed is None else [_mapping(o, OBJECT_KEYS, f"{where}.objects[]") for o in listed]
    scene.setdefault("background", "plain")
    scene["background_colours"] = tuple(scene.get("background_colours", ("white", "white")))
    for key in ("pan", "zoom"):
        if key in scene:
            scene[key] = tuple(scene[key])
    try:
        objects = tuple(
            MovingObject(**{key: tuple(v) if isinstance(v, list) else v for key, v in entry.items()})
            for entry in entries
        )
        camera = (scene.get("pan", (0.0, 0.0)), scene.get("zoom", (1.0, 1.0)), scene.get("camera_timing", "constant"))
        prompt = describe(objects, scene["background"], scene["background_colours"], *camera)
    except (TypeError, ValueError) as error:
        raise SmaError(f"{where}: {error}") from error
    return {"objects": objects, **scene}, prompt


def _target(entry: Any, where: str) -> Target:
    """A prompt, or {colour, shape} / {objects: [{colour, shape}, ...]} with a plain `background` colour (or a
    `texture` in two `background_colours`) for "a <colour> <shape> [and ...] on a ... background"."""
    from sma.embedded.world import scene_prompt
    from sma.video.synthetic import COLOURS, SHAPES

    if isinstance(entry, str) and entry:
        return Target(entry)
    entry = _mapping(entry, TARGET_KEYS, where)
    if "objects" in entry and ("colour" in entry or "shape" in entry):
        raise SmaError(f"{where}: give colour and shape inside objects, not beside it")
    listed = entry.get("objects", [{"colour": entry.get("colour"), "shape": entry.get("shape")}])
    if not isinstance(listed, list) or not listed:
        raise SmaError(f"{where}.objects must be a list of {{colour, shape}}")
    objects = []
    for number, item in enumerate(listed):
        item = _mapping(item, ("colour", "shape"), f"{where}.objects[{number}]")
        objects.append((item.get("colour"), item.get("shape")))
    texture = entry.get("texture", "plain")
    if texture != "plain" and "background" in entry:
        raise SmaError(f"{where}: a {texture} background takes background_colours, not background")
    colours = entry.get("background_colours", [entry.get("background", "white")] * 2)
    checks = [(texture, ("plain", *TEXTURES), "texture")]
    checks += [(colour, COLOURS, "colour") for colour, _ in objects] + [
        (shape, SHAPES, "shape") for _, shape in objects
    ]
    checks += [(colour, COLOURS, "background colour") for colour in (colours if isinstance(colours, list) else [None])]
    for value, choices, name in checks:
        if value not in choices:
            raise SmaError(f"{where}.{name} must be one of {', '.join(choices)}, got {value!r}")
    if len(colours) != 2:
        raise SmaError(f"{where}.background_colours must be two colours, got {colours!r}")
    if len({colour for colour, _ in objects}) < len(objects):
        raise SmaError(f"{where}: each object needs its own colour, so that it can be found by it")
    return Target(scene_prompt(objects, texture, tuple(colours)), tuple(objects), texture)


def _methods(values: Any, here: Path) -> tuple[MethodEntry, ...]:
    """A list of names, or a mapping of name -> {method (default: the name), recipe, overrides}."""
    from sma.methods import METHODS

    if isinstance(values, list):
        values = {name: {} for name in values}
    if not isinstance(values, dict):
        raise SmaError(
            "suite key methods must be a list of method names or a mapping of name -> {method, recipe, overrides}"
        )
    entries = []
    for name, settings in values.items():
        settings = _mapping(settings or {}, METHOD_KEYS, f"methods.{name}")
        method = settings.get("method", name)
        if method not in METHODS:
            raise SmaError(f"unknown method {method!r} in the suite: expected one of {', '.join(METHODS)}")
        recipe = None
        if "recipe" in settings:
            recipe = here / _text(settings["recipe"], f"methods.{name}.recipe")
            if not recipe.is_file():
                raise SmaError(f"methods.{name}: no recipe file at {recipe}")
        entries.append(
            MethodEntry(
                name,
                method,
                recipe,
                _overrides(settings.get("overrides", {}), f"methods.{name}.overrides"),
                None if "variants" not in settings else tuple(_list(settings, "variants")),
            )
        )
    return tuple(entries)


def _variant(entry: Any) -> Variant:
    """A built-in name (sma, nosma, global-only, local-only, untuned) or {name, sma: {recipe sma keys}, scale}."""
    if isinstance(entry, str):
        if entry not in BUILTIN_VARIANTS:
            raise SmaError(
                f"unknown variant {entry!r}: use one of {', '.join(BUILTIN_VARIANTS)} or a mapping of "
                f"{', '.join(VARIANT_KEYS)}"
            )
        return BUILTIN_VARIANTS[entry]
    entry = _mapping(entry, VARIANT_KEYS, "a variant")
    name = _text(entry.get("name"), "variants[].name")
    sma = entry.get("sma", {})
    if not isinstance(sma, dict):
        raise SmaError(f"variant {name}: sma must be a mapping of recipe keys of the sma section")
    scale = entry.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale < 0):
        raise SmaError(f"variant {name}: scale must be a number >= 0, got {scale!r}")
    return Variant(name, {"enabled": True, **sma}, None if scale is None else float(scale))


def cell_config(suite: Suite, cell: Cell, model: str):
    """The TransferConfig of a cell: the method's recipe, the suite's overrides, the method's, the variant's; a method
    that trains nothing (DMT, FlowMotion) beside trained ones takes none of the suite's training keys."""
    from sma.methods import method_class
    from sma.recipes import load_config

    reference = cell.reference
    trains = method_class(cell.method.method).trains
    overrides = {
        **without_training(suite.overrides, trains),
        **cell.method.overrides,
        "method": cell.method.method,
        "model": model,
        "prompt": reference.prompt,
        "targets": [target.prompt for target in reference.targets],
        "seed": cell.seed,
        **without_training(suite.settings, trains),
        **{f"sma.{key}": value for key, value in cell.variant.sma.items()},
    }
    try:
        config = load_config(cell.method.recipe, overrides)
        if cell.variant.scale is not None:
            scaled = {
                f"sma.{key}": getattr(config.sma, key) * cell.variant.scale for key in ("global_weight", "local_weight")
            }
            config = load_config(cell.method.recipe, overrides | scaled)
    except SmaError as error:
        raise SmaError(f"cell {cell.id}: {error}") from error
    return config


def without_training(overrides: dict[str, Any], trains: bool) -> dict[str, Any]:
    """The dotted overrides, less the `train.*` keys for a method that trains nothing."""
    return overrides if trains else {key: value for key, value in overrides.items() if not key.startswith("train.")}


def fingerprint(config, cell: Cell) -> str:
    """Short hash of everything that makes a cell's outputs: its resolved config, its reference and, for a
    model in a local folder, the folder's contents (a model retrained in place is another setting)."""
    reference = cell.reference
    source = str(reference.path) if reference.path is not None else repr(reference.synthetic)
    untuned = [] if cell.variant.tune else ["untuned"]
    models = [model_digest(config.model), model_digest(config.motion_adapter)]
    text = json.dumps([config.to_dict(), source, *untuned, *models], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


UNHASHED = {".md", ".gif", ".png"}  # a model card and its samples do not make the outputs


def model_digest(source: str) -> str | None:
    """Hash of a local model folder's files (weights, configs, tokenizer); None for a hub id, whose revision is in
    the config."""
    if not source or not Path(source).is_dir():
        return None
    folder = Path(source).resolve()
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix not in UNHASHED)
    stamps = tuple((path.relative_to(folder).as_posix(), *_size_and_time(path)) for path in files)
    return _files_digest(folder, stamps)


def _size_and_time(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


@functools.cache
def _files_digest(folder: Path, stamps: tuple[tuple[str, int, int], ...]) -> str:
    """Content hash of the files that (name, size, mtime) `stamps` name: hashed once per process unless one changes."""
    digest = hashlib.sha256()
    for name, _, _ in stamps:
        digest.update(name.encode())
        with open(folder / name, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()[:16]


def reference_clip(cell: Cell, config, out: Path) -> tuple[Path, Any]:
    """The reference file of a cell and, for a synthetic one, its clip (ground truth in the cell's pixels):
    rendered at the cell's size with as many frames as `video.frames`, `video.stride` and `video.start` take."""
    from sma.video import synthetic_video, write_video

    reference = cell.reference
    if reference.synthetic is None:
        return reference.path, None
    video = config.video
    frames = video.start + (video.frames - 1) * video.stride + 1
    clip = synthetic_video(**reference.synthetic, num_frames=frames, height=video.height, width=video.width)
    path = out / "references" / f"{reference.name}-{frames}x{video.height}x{video.width}.mp4"
    write_video(path, clip.frames, fps=clip.fps, overwrite=True)
    return path, clip


def evaluate_cell(cell: Cell, config, run_dir: Path, clip) -> list[dict[str, Any]]:
    """One record per target: `sma.evaluation.score` against the reference as the run read it (reference.mp4),
    with the ground truth of a synthetic reference's `clip`."""
    from sma.metrics import video_flow
    from sma.run_folder import video_path
    from sma.video import read_video

    reference = read_video(run_dir / "reference.mp4")
    reference_flow = video_flow(reference)
    records = []
    for index, target in enumerate(cell.reference.targets):
        path = video_path(run_dir, index, target.prompt)
        frames = read_video(path, len(reference), size=reference.shape[1:3])
        truth = None
        if clip is not None:
            background = cell.reference.synthetic["background"]
            truth = GroundTruth(clip, background, target, config.video.start, config.video.stride)
        record = {"target": target.prompt, "video": str(path.relative_to(run_dir.parent.parent))}
        records.append(record | score(reference, frames, reference_flow=reference_flow, truth=truth))
    return records


def read_results(out: Path) -> list[dict[str, Any]]:
    """The records of results.jsonl (older files' keys read as today's); a last line cut short by an
    interruption is dropped from the file."""
    path = Path(out) / RESULTS_FILE
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines):
        try:
            records.append(current_keys(json.loads(line)))
        except json.JSONDecodeError:
            if number != len(lines) - 1:
                raise SmaError(f"{path} line {number + 1} is not JSON: the results file is damaged") from None
            path.write_text("".join(f"{kept}\n" for kept in lines[:-1]))
    return records


def append_results(out: Path, records: list[dict[str, Any]]) -> None:
    """One write per cell, flushed to disk, so a cell's records are all there or (at worst) cut off last."""
    with open(Path(out) / RESULTS_FILE, "a", encoding="utf-8") as file:
        file.write("".join(json.dumps(record) + "\n" for record in records))
        file.flush()
        os.fsync(file.fileno())


def run_suite(
    suite: Suite,
    out: Path,
    *,
    model: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    transfer: Callable | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every cell not yet in OUT/results.jsonl, score its outputs, and rewrite the summary after each.

    `model` replaces the suite's (default: the embedded model of the suite's world). `transfer` is `sma.runs.transfer`
    unless given. Returns every record.
    """
    from tqdm.auto import tqdm

    from sma.embedded import embedded_model

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SmaError(f"{out} is a file, not a benchmark folder")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise SmaError(f"{out} already holds a benchmark: set `resume` to continue it or `overwrite` to replace it")
    model = model or suite.model or embedded_model(suite.world)
    cells = suite.cells()
    configs = {cell.id: cell_config(suite, cell, model) for cell in cells}  # every config checked before any work
    if overwrite and not resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(suite.path, out / "suite.yaml")
    records = read_results(out)
    done = _finished(records, cells, configs)
    if transfer is None:
        from sma.runs import transfer
    bar = tqdm(
        total=len(cells),
        initial=len(done),
        desc=f"benchmark {suite.name}",
        unit="cell",
        disable=not progress,
        file=sys.stderr,
    )
    for cell in cells:
        if cell.id in done:
            continue
        bar.set_postfix_str(cell.id)
        config = configs[cell.id]
        started = time.perf_counter()
        reference_path, clip = reference_clip(cell, config, out)
        with _cell_log(out / "logs" / f"{cell.id}.log"):
            run_dir = transfer(config, reference_path, out / "cells" / cell.id, overwrite=True, tune=cell.variant.tune)
        common = {
            "cell": cell.id,
            "reference": cell.reference.name,
            "method": cell.method.name,
            "variant": cell.variant.name,
            "sma": cell.variant.uses_sma,
            "tuned": cell.variant.tune,
            "seed": cell.seed,
            "fingerprint": fingerprint(config, cell),
            "seconds": round(time.perf_counter() - started, 1),
        }
        new = [{**common, **record} for record in evaluate_cell(cell, config, Path(run_dir), clip)]
        append_results(out, new)
        records += new
        write_summary(out, records, suite.name)
        bar.update()
    bar.close()
    write_summary(out, records, suite.name)
    return records


def _finished(records: list[dict], cells: list[Cell], configs: dict) -> set[str]:
    """Cells with all their outputs recorded; one recorded with other settings is an error, not a silent redo."""
    recorded: dict[str, list[dict]] = {}
    for record in records:
        recorded.setdefault(record["cell"], []).append(record)
    done = set()
    for cell in cells:
        if cell.id not in recorded:
            continue
        if any(record["fingerprint"] != fingerprint(configs[cell.id], cell) for record in recorded[cell.id]):
            raise SmaError(
                f"cell {cell.id} was run with other settings or another model than the suite's now: "
                "write to another folder or set `overwrite`"
            )
        if len(recorded[cell.id]) == len(cell.reference.targets):
            done.add(cell.id)
    return done


@contextlib.contextmanager
def _cell_log(path: Path) -> Iterator[None]:
    """The cell's own messages (training and sampling bars, warnings, what it is generating) go to its log, so
    the suite's bar is the one on the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as log, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        yield


def bootstrap_interval(values: list[float], rng: np.random.Generator, resamples: int = 2000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean."""
    values = np.asarray(values, np.float64)
    means = rng.choice(values, (resamples, len(values))).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _statistics(values: list[float], rng: np.random.Generator) -> tuple[float, float, float] | None:
    finite = [value for value in values if value is not None and np.isfinite(value)]
    return (float(np.mean(finite)), *bootstrap_interval(finite, rng)) if finite else None


def _groups(records: list[dict]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((record["method"], record["variant"]) for record in records))


def summarise(records: list[dict]) -> list[dict]:
    """Per method and variant: n and, per metric, (mean, low, high) of its 95% bootstrap interval (None: unmeasured)."""
    rng = np.random.default_rng(0)
    rows = []
    for method, variant in _groups(records):
        chosen = [r for r in records if r["method"] == method and r["variant"] == variant]
        row = {"method": method, "variant": variant, "n": len(chosen)}
        for key in (metric.key for metric in SUMMARY):
            row[key] = _statistics([r.get(key) for r in chosen], rng)
        rows.append(row)
    return rows


def _tuned(record: dict) -> bool:
    return record.get("tuned", True)  # records of before the untuned control are all tuned


def _with_sma(record: dict) -> bool:
    return record["sma"]


def _tuned_without_sma(record: dict) -> bool:
    return _tuned(record) and not record["sma"]


def _untuned(record: dict) -> bool:
    return not _tuned(record)


def pair_up(
    records: list[dict], treated: Callable = _with_sma, control: Callable = _tuned_without_sma
) -> list[tuple[dict, dict]]:
    """Each `treated` record with the `control` record of the same method on the same reference, target and
    seed; by default each record with SMA and its run without SMA."""

    def pair(record: dict) -> tuple:
        return record["method"], record["reference"], record["target"], record["seed"]

    baseline = {pair(r): r for r in records if control(r)}
    return [(r, baseline[pair(r)]) for r in records if treated(r) and pair(r) in baseline]


def paired_differences(
    records: list[dict], treated: Callable = _with_sma, control: Callable = _tuned_without_sma
) -> list[dict]:
    """Each variant with SMA minus the same method without SMA on the same reference, target and seed (or
    other `treated` and `control` records, as `pair_up`): the pairing removes the spread between references,
    so the intervals measure SMA's effect."""
    rng = np.random.default_rng(1)
    pairs = pair_up(records, treated, control)
    rows = []
    for method, variant in _groups(records):
        chosen = [(r, base) for r, base in pairs if r["method"] == method and r["variant"] == variant]
        if not chosen:
            continue
        row = {"method": method, "variant": f"{variant} minus {chosen[0][1]['variant']}", "n": len(chosen)}
        for key in (metric.key for metric in SUMMARY):
            differences = [
                r[key] - base[key] for r, base in chosen if r.get(key) is not None and base.get(key) is not None
            ]
            row[key] = _statistics(differences, rng)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """A markdown table of `summarise` or `paired_differences` rows, with the metrics any row measured."""
    shown = [metric for metric in SUMMARY if any(row[metric.key] for row in rows)]
    header = "| method | variant | n | " + " | ".join(f"{metric.title}{metric.arrow}" for metric in shown)
    lines = [header + " |", "|---|---|---|" + "---|" * len(shown)]
    for row in rows:
        cells = [
            "-" if row[metric.key] is None else "{:.3f} [{:.3f}, {:.3f}]".format(*row[metric.key]) for metric in shown
        ]
        lines.append(f"| {row['method']} | {row['variant']} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_text(records: list[dict], name: str) -> str:
    rows, differences = summarise(records), paired_differences(records)
    text = [
        f"# Benchmark {name}",
        "",
        f"{len(records)} outputs. Means with 95% bootstrap intervals over references x targets x seeds.",
        "",
        table(rows),
    ]
    if differences:
        text += [
            "",
            "Paired differences against the same method without SMA (same reference, target and seed):",
            "",
            table(differences),
        ]
    tuning = paired_differences(records, _tuned, _untuned)
    if tuning:
        text += [
            "",
            "What the training adds: each variant minus the untuned backbone generating the same way (same "
            "reference, target and seed):",
            "",
            table(tuning),
        ]
    references = list(dict.fromkeys(record["reference"] for record in records))
    by_reference = [(name, paired_differences([r for r in records if r["reference"] == name])) for name in references]
    if len(references) > 1 and any(rows for _, rows in by_reference):
        text += ["", "Paired differences per reference (kind of motion):"]
        for name, rows in by_reference:
            text += ["", f"**{name}**", "", table(rows)] if rows else []
    return "\n".join(text) + "\n"


def write_summary(out: Path, records: list[dict], name: str) -> None:
    """OUT/summary.md (the tables), OUT/summary.png (the means with their intervals) and, where runs with and
    without SMA pair up, OUT/differences.png (each variant minus no SMA, with its interval)."""
    from sma.video.atomic import atomic_output

    if not records:
        return
    with atomic_output(Path(out) / "summary.md", overwrite=True) as temporary:
        temporary.write_text(summary_text(records, name))
    plot(summarise(records), Path(out) / "summary.png")
    if differences := paired_differences(records):
        plot(differences, Path(out) / "differences.png")


def merge_parts(parts: list[Path], out: Path, name: str, read: Callable = read_results) -> list[dict]:
    """One benchmark out of parts run apart (in parallel lanes, or over several sessions): OUT/results.jsonl and its
    summary, from each part's records as `read` gives them. A cell recorded in two parts is refused: which of them to
    keep is the user's call."""
    from sma.video.atomic import atomic_output

    records, seen = [], {}
    for part in parts:
        found = read(part)
        if not found:
            raise SmaError(f"{part} holds no results.jsonl records")
        for cell in dict.fromkeys(record["cell"] for record in found):
            if cell in seen:
                raise SmaError(f"cell {cell} is in both {seen[cell]} and {part}: keep one")
            seen[cell] = part
        records += found
    Path(out).mkdir(parents=True, exist_ok=True)
    with atomic_output(Path(out) / RESULTS_FILE, overwrite=True) as temporary:
        temporary.write_text("".join(f"{json.dumps(record)}\n" for record in records))
    write_summary(out, records, name)
    return records


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sma.video.atomic import atomic_output

    shown = [(metric.key, metric.title) for metric in SUMMARY if any(row[metric.key] for row in rows)]
    columns = min(4, len(shown))
    lines = -(-len(shown) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 3.4 * lines), squeeze=False)
    for unused in axes.flat[len(shown) :]:
        unused.axis("off")
    labels = [f"{row['method']}\n{row['variant']}" for row in rows]
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    colours = [f"C{variants.index(row['variant']) % 10}" for row in rows]
    for axis, (key, title) in zip(axes.flat, shown, strict=False):
        values = [row[key] or (np.nan, np.nan, np.nan) for row in rows]
        means = np.array([value[0] for value in values])
        errors = np.array([[value[0] - value[1], value[2] - value[0]] for value in values]).T
        axis.bar(range(len(rows)), means, yerr=errors, capsize=3, color=colours)
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set_xticks(range(len(rows)), labels, fontsize=6, rotation=90)
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    with atomic_output(path, overwrite=True) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
