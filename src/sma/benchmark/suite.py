"""A benchmark suite: its YAML read and checked (by `sma.recipes.check_section`, as recipes are), and its cells:
every (reference, method, variant, seed)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sma.errors import SmaError
from sma.evaluation import Target
from sma.evaluation.scoring import TEXTURES


@dataclass(frozen=True)
class Reference:
    """A reference clip: a video file (`path`) or a synthetic clip (`synthetic`, `synthetic_video` arguments)."""

    name: str
    prompt: str
    targets: tuple[Target, ...]
    path: Path | None = None
    synthetic: dict[str, Any] | None = None
    mask: Path | None = None  # an MTBench clip's first-frame mask: its motion is scored inside the mask's box
    level: str | None = None  # an MTBench clip's difficulty (easy, medium, hard)


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
class Scoring:
    """The field's table a suite is scored for (`sma.evaluation.PROTOCOLS`; "" for none) and the CLIP and DINO
    models (Hub ids or folders) its scores need."""

    protocol: str = ""
    clip: str | None = None
    dino: str | None = None


@dataclass(frozen=True)
class Cell:
    id: str
    reference: Reference
    method: MethodEntry
    variant: Variant
    seed: int
    scoring: Scoring = Scoring()


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
    scoring: Scoring = Scoring()

    def cells(self) -> list[Cell]:
        """Seed outermost, so the pairs a paired difference needs finish early in a long suite."""
        from sma.run_folder import slug

        return [
            Cell(
                slug(f"{reference.name}-{method.name}-{variant.name}-seed{seed}", 120),
                reference,
                method,
                variant,
                seed,
                self.scoring,
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


SUITE_KEY = "suite key"  # how messages name the keys below


@dataclass
class SuiteKeys:
    """The keys of a suite file, each with the type of its default (checked by `sma.recipes.check_section`)."""

    name: str = ""
    model: str = ""
    world: str = "simple"
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 0
    size: Any = None  # an integer or [height, width]
    frames: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    methods: Any = None  # a list of names or a mapping of name -> MethodKeys
    variants: list[Any] = field(default_factory=list)
    references: list[Any] = field(default_factory=list)
    clips: str = "."
    mtbench: str = ""  # a folder in MTBench's layout: its clips and prompts are the references
    protocol: str = ""
    clip: str = ""
    dino: str = ""


@dataclass
class ReferenceKeys:
    name: str = ""
    path: str = ""
    synthetic: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""
    targets: list[Any] = field(default_factory=list)


@dataclass
class SceneKeys:
    """A synthetic reference's scene (`synthetic_video` arguments); its one object's keys are MovingObject's."""

    objects: list[Any] = field(default_factory=list)
    background: str = "plain"
    background_colours: list[str] = field(default_factory=list)
    pan: list[float] = field(default_factory=list)
    zoom: list[float] = field(default_factory=list)
    camera_timing: str = "constant"
    seed: int = 0


@dataclass
class TargetKeys:
    colour: str = ""
    shape: str = ""
    objects: list[Any] = field(default_factory=list)
    background: str = ""
    texture: str = "plain"
    background_colours: list[str] = field(default_factory=list)


@dataclass
class TargetObjectKeys:
    colour: str = ""
    shape: str = ""


@dataclass
class MethodKeys:
    method: str = ""
    recipe: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)


@dataclass
class VariantKeys:
    name: str = ""
    sma: dict[str, Any] = field(default_factory=dict)
    scale: float = 0.0


def _keys(schema, values: Any, where: str) -> dict[str, Any]:
    """`values` checked against a schema above, as recipe sections are (`where`: their place in the suite)."""
    from sma.recipes import check_section

    return check_section(schema, values, f"{where}." if where else "", SUITE_KEY)


def read_suite(path: Path, clips: Path | None = None) -> Suite:
    """Read and check a suite YAML. Its reference paths are relative to `clips` (a folder), else to its own
    `clips:` key (relative to the suite's folder), else to the suite's folder; its `mtbench:` key names a folder in
    MTBench's layout whose clips are the references instead (`clips`, where given). Every mistake is one SmaError."""
    path = Path(path)
    if not path.is_file():
        raise SmaError(f"no suite file at {path}")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SmaError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from error
    return _suite(values, path, clips)


def mtbench_suite(folder: Path, methods: list[str] | None, variants: list[str] | None, embedded: bool) -> Suite:
    """A folder in MTBench's layout as a suite: every clip x evaluation prompt x method (`--methods`) x variant
    (default sma and nosma), scored for MTBench's table; at the embedded model's frames and size when `embedded`."""
    if not methods:
        raise SmaError(f"{folder} is an MTBench folder: name the methods to run on it (--methods vmc,motiondirector)")
    values = {"name": Path(folder).resolve().name, "mtbench": ".", "methods": methods}
    values |= {"variants": variants or ["sma", "nosma"]} | ({"world": "simple"} if embedded else {})
    return _suite(values, Path(folder), None)


def _suite(values: Any, path: Path, clips: Path | None) -> Suite:
    values = _keys(SuiteKeys(), values, "")
    from_folder = "mtbench" in values
    if from_folder and "references" in values:
        raise SmaError("the suite names both references and an mtbench folder: keep one")
    for required in ("methods", "variants", *(() if from_folder else ("references",))):
        if not values.get(required):
            raise SmaError(f"the suite names no {required}: add a list of them under {required}")
    here = (path if path.is_dir() else path.parent).resolve()  # absolute: a cell's fingerprint holds the paths
    seeds = values.get("seeds", [0])
    if not seeds or any(isinstance(seed, bool) or not isinstance(seed, int) for seed in seeds):
        raise SmaError(f"{SUITE_KEY} seeds must be a list of integers, got {seeds!r}")
    if from_folder:
        references = read_mtbench(Path(clips) if clips is not None else here / values["mtbench"])
    else:
        clips_folder = Path(clips).resolve() if clips is not None else (here / values.get("clips", ".")).resolve()
        if not clips_folder.is_dir():
            where = "--clips" if clips is not None else "the suite's clips"
            raise SmaError(f"{where}: no folder at {clips_folder} (the reference videos' folder)")
        references = tuple(_reference(entry, index, clips_folder) for index, entry in enumerate(values["references"]))
    methods = _methods(values["methods"], here)
    variants = tuple(_variant(entry) for entry in values["variants"])
    _check_names(references, methods, variants)
    return Suite(
        name=values.get("name", path.stem),
        path=path,
        model=_local_or_hub(values.get("model"), here),
        seeds=tuple(seeds),
        references=references,
        methods=methods,
        variants=variants,
        overrides=_suite_overrides(values),
        world=values.get("world", Suite.world),
        scoring=_scoring(values, here),
    )


def _local_or_hub(name: str | None, here: Path) -> str | None:
    """A model named in a suite: a path relative to the suite's folder where one is there, else a Hub id."""
    return None if name is None else str(here / name) if (here / name).exists() else name


def _scoring(values: dict[str, Any], here: Path) -> Scoring:
    """The protocol (default "mtbench" for an mtbench folder) and the CLIP and DINO models it needs."""
    from sma.evaluation import PROTOCOLS

    protocol = values.get("protocol", "mtbench" if "mtbench" in values else "")
    if protocol not in ("", *PROTOCOLS):
        raise SmaError(f"{SUITE_KEY} protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if not protocol:
        return Scoring()
    from sma.metrics.clip import DEFAULT_CLIP  # with torch: only a suite that scores with CLIP loads it
    from sma.metrics.dino import DEFAULT_DINO

    clip = _local_or_hub(values.get("clip", DEFAULT_CLIP), here)
    dino = _local_or_hub(values.get("dino", DEFAULT_DINO), here) if protocol == "mtbench" else None
    return Scoring(protocol, clip, dino)


LEVELS = ("easy", "medium", "hard")  # MTBench's difficulties (DeT's README, assets/quantitative.png)


def read_mtbench(folder: Path) -> tuple[Reference, ...]:
    """The clips of a folder in MTBench's layout (DeT's evaluation.py lines 110-134, README lines 36-56): each
    clip folder CLIP holds videos/CLIP.mp4, masks/CLIP/00000.png (the first frame's mask), eval_prompts.txt (the
    targets, one a line) and prompts.txt (the clip's caption, its first line); the clip folders lie in the folder
    itself or in difficulty folders easy/, medium/, hard/ within it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SmaError(
            f"mtbench: no folder at {folder} (download MTBench: hf download QingyuShi/MTBench --repo-type dataset "
            "--local-dir DIR, then name DIR under mtbench: or with --clips)"
        )
    entries = _folders(folder)
    if any(entry.name in LEVELS for entry in entries):
        stray = [entry.name for entry in entries if entry.name not in LEVELS]
        if stray:
            raise SmaError(f"{folder} holds difficulty folders ({', '.join(LEVELS)}) and also {', '.join(stray)}")
        found = [(clip, level.name) for level in entries for clip in _folders(level)]
    else:
        found = [(clip, None) for clip in entries]
    if not found:
        raise SmaError(f"{folder} holds no clip folders (MTBench's layout: CLIP/videos/CLIP.mp4, ...)")
    return tuple(_mtbench_clip(clip, level) for clip, level in found)


def _folders(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def _mtbench_clip(clip: Path, level: str | None) -> Reference:
    video, mask = clip / "videos" / f"{clip.name}.mp4", clip / "masks" / clip.name / "00000.png"
    for needed, what in (
        (video, "the clip"),
        (mask, "its first frame's mask"),
        (clip / "eval_prompts.txt", "its evaluation prompts"),
        (clip / "prompts.txt", "its caption"),
    ):
        if not needed.is_file():
            raise SmaError(f"MTBench clip {clip.name}: no {needed.relative_to(clip)} ({what})")
    targets = [line.strip() for line in (clip / "eval_prompts.txt").read_text().splitlines() if line.strip()]
    captions = [line.strip() for line in (clip / "prompts.txt").read_text().splitlines() if line.strip()]
    if not targets or not captions:
        empty = "eval_prompts.txt" if not targets else "prompts.txt"
        raise SmaError(f"MTBench clip {clip.name}: {empty} holds no prompt")
    return Reference(clip.name, captions[0], tuple(map(Target, targets)), path=video, mask=mask, level=level)


def mask_box(mask: Path, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """DeT's box around a first-frame mask (evaluation.py lines 116-125: rows and columns from the first nonzero
    pixel up to, not including, the last), as (x0, y0, x1, y1) in pixels of a (height, width) = `size` frame."""
    from PIL import Image

    pixels = np.asarray(Image.open(mask))
    rows, columns = np.nonzero(pixels if pixels.ndim == 2 else pixels.any(axis=-1))
    if not len(rows):
        raise SmaError(f"{mask} marks no pixel: the mask's box is empty")
    (height, width), (mask_height, mask_width) = size, pixels.shape[:2]
    scale_x, scale_y = width / mask_width, height / mask_height
    box = columns.min() * scale_x, rows.min() * scale_y, columns.max() * scale_x, rows.max() * scale_y
    return tuple(map(float, box))


def _suite_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """The suite's recipe keys, dotted: its overrides, then steps, frames and size, then the frames and size of its
    embedded model's world where it sets none."""
    from sma.embedded.scenes import WORLD_SIZES

    overrides = _overrides(values.get("overrides", {}), "overrides")
    for key, dotted in (("steps", "train.steps"), ("frames", "video.frames")):
        if key in values:
            overrides[dotted] = values[key]
    if "size" in values:
        overrides["video.height"], overrides["video.width"] = _size(values["size"])
    if "world" in values:
        if values["world"] not in WORLD_SIZES:
            raise SmaError(f"{SUITE_KEY} world must be one of {', '.join(WORLD_SIZES)}, got {values['world']!r}")
        frames, size = WORLD_SIZES[values["world"]]
        overrides.setdefault("video.frames", frames)
        overrides.setdefault("video.height", size)
        overrides.setdefault("video.width", size)
    return overrides


def _check_names(references: tuple[Reference, ...], methods: tuple[MethodEntry, ...], variants: tuple[Variant, ...]):
    """Names that tell references and variants apart, one baseline without SMA, and the variants methods name."""
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


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2:
        value = tuple(value)
    elif not isinstance(value, tuple):
        value = (value, value)
    if any(isinstance(side, bool) or not isinstance(side, int) for side in value):
        raise SmaError(f"{SUITE_KEY} size must be an integer or [height, width], got {value!r}")
    return value


def _overrides(values: Any, where: str) -> dict[str, Any]:
    """Recipe keys, nested or dotted, as dotted overrides (checked later by `load_config`)."""
    from sma.recipes import flatten

    if not isinstance(values, dict):
        raise SmaError(f"{SUITE_KEY} {where} must be a mapping of recipe keys")
    return flatten(values)


def _reference(entry: Any, index: int, clips: Path) -> Reference:
    where = f"references[{index}]"
    entry = _keys(ReferenceKeys(), entry, where)
    if ("path" in entry) == ("synthetic" in entry):
        raise SmaError(f"{where} needs either a path or a synthetic clip")
    if "path" in entry:
        path = clips / entry["path"]
        if not path.exists():
            raise SmaError(
                f"{where}: no reference video at {path} (relative to --clips, else the suite's clips: folder, "
                "else the suite's own folder)"
            )
        if "prompt" not in entry:
            raise SmaError(f"{where} ({path.name}) needs a prompt that says what the video shows")
        name, synthetic, prompt = path.stem, None, entry["prompt"]
    else:
        synthetic, default_prompt = _synthetic(entry["synthetic"], f"{where}.synthetic")
        objects = synthetic["objects"]
        name, path = "+".join(dict.fromkeys(obj.motion for obj in objects)), None
        prompt = entry.get("prompt", default_prompt)
    targets = entry.get("targets")
    if not targets:
        raise SmaError(f"{where} needs a list of target prompts (targets)")
    return Reference(
        name=entry.get("name", name),
        prompt=prompt,
        targets=tuple(_target(target, f"{where}.targets[{number}]") for number, target in enumerate(targets)),
        path=path,
        synthetic=synthetic,
    )


def _synthetic(values: Any, where: str) -> tuple[dict[str, Any], str]:
    """`synthetic_video` arguments from one object's keys or a list of `objects`, with the scene's keys; and the
    clip's describing prompt."""
    from sma.video.synthetic import MovingObject, describe

    if not isinstance(values, dict):
        raise SmaError(f"{SUITE_KEY} {where} must be a mapping of an object's and the scene's keys")
    scene_keys = {f.name for f in fields(SceneKeys)}
    scene = _keys(SceneKeys(), {key: value for key, value in values.items() if key in scene_keys}, where)
    values = {key: value for key, value in values.items() if key not in scene_keys}
    listed = scene.pop("objects", None)
    if listed is not None and values:
        raise SmaError(f"{where}: give the objects' keys inside objects, not beside it ({', '.join(values)})")
    if listed is not None and not listed:
        raise SmaError(f"{where}.objects must be a list of objects")
    entries = [values] if listed is None else listed
    for entry in entries:  # checked, and kept as given: a cell's fingerprint holds their repr
        _keys(MovingObject(), entry, where if listed is None else f"{where}.objects[]")
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
    from sma.embedded.scenes import target
    from sma.video.synthetic import COLOURS, SHAPES

    if isinstance(entry, str) and entry:
        return Target(entry)
    entry = _keys(TargetKeys(), entry, where)
    if "objects" in entry and ("colour" in entry or "shape" in entry):
        raise SmaError(f"{where}: give colour and shape inside objects, not beside it")
    listed = entry.get("objects", [{"colour": entry.get("colour"), "shape": entry.get("shape")}])
    if not listed:
        raise SmaError(f"{where}.objects must be a list of {{colour, shape}}")
    objects = []
    for number, item in enumerate(listed):
        item = _keys(TargetObjectKeys(), item, f"{where}.objects[{number}]")
        objects.append((item.get("colour"), item.get("shape")))
    texture = entry.get("texture", "plain")
    if texture != "plain" and "background" in entry:
        raise SmaError(f"{where}: a {texture} background takes background_colours, not background")
    colours = entry.get("background_colours", [entry.get("background", "white")] * 2)
    checks = [(texture, ("plain", *TEXTURES), "texture")]
    checks += [(colour, COLOURS, "colour") for colour, _ in objects] + [
        (shape, SHAPES, "shape") for _, shape in objects
    ]
    checks += [(colour, COLOURS, "background colour") for colour in colours]
    for value, choices, name in checks:
        if value not in choices:
            raise SmaError(f"{where}.{name} must be one of {', '.join(choices)}, got {value!r}")
    if len(colours) != 2:
        raise SmaError(f"{where}.background_colours must be two colours, got {colours!r}")
    if len({colour for colour, _ in objects}) < len(objects):
        raise SmaError(f"{where}: each object needs its own colour, so that it can be found by it")
    return target(objects, texture, tuple(colours))


def _methods(values: Any, here: Path) -> tuple[MethodEntry, ...]:
    """A list of names, or a mapping of name -> {method (default: the name), recipe, overrides}."""
    from sma.methods import METHODS

    if isinstance(values, list):
        values = {name: {} for name in values}
    if not isinstance(values, dict):
        raise SmaError(
            f"{SUITE_KEY} methods must be a list of method names or a mapping of name -> "
            f"{{{', '.join(f.name for f in fields(MethodKeys))}}}"
        )
    entries = []
    for name, settings in values.items():
        settings = _keys(MethodKeys(), settings or {}, f"methods.{name}")
        method = settings.get("method", name)
        if method not in METHODS:
            raise SmaError(f"unknown method {method!r} in the suite: expected one of {', '.join(METHODS)}")
        recipe = None
        if "recipe" in settings:
            recipe = here / settings["recipe"]
            if not recipe.is_file():
                raise SmaError(f"methods.{name}: no recipe file at {recipe}")
        entries.append(
            MethodEntry(
                name,
                method,
                recipe,
                _overrides(settings.get("overrides", {}), f"methods.{name}.overrides"),
                None if "variants" not in settings else tuple(settings["variants"]),
            )
        )
    return tuple(entries)


def _variant(entry: Any) -> Variant:
    """A built-in name (sma, nosma, global-only, local-only, untuned) or {name, sma: {recipe sma keys}, scale}."""
    if isinstance(entry, str):
        if entry not in BUILTIN_VARIANTS:
            raise SmaError(
                f"unknown variant {entry!r}: use one of {', '.join(BUILTIN_VARIANTS)} or a mapping of "
                f"{', '.join(f.name for f in fields(VariantKeys))}"
            )
        return BUILTIN_VARIANTS[entry]
    entry = _keys(VariantKeys(), entry, "variants[]")
    name = entry.get("name")
    if not name:
        raise SmaError(f"{SUITE_KEY} variants[].name must be text, got {name!r}")
    sma = entry.get("sma", {})
    scale = entry.get("scale")
    if scale is not None and scale < 0:
        raise SmaError(f"variant {name}: scale must be a number >= 0, got {scale!r}")
    return Variant(name, {"enabled": True, **sma}, None if scale is None else float(scale))
