"""`train`, `generate` and `transfer` as Python functions; the command line is a thin layer over these.

A run folder holds the resolved config, the reference clip (and, with several references,
every one of them in references/), the adapter, checkpoints, the loss log and curves, one
video per target, a side-by-side comparison and metrics.json (motion fidelity of each
output, seconds and peak memory of each phase).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from tqdm.auto import tqdm

from sma.adapter import Adapter, adapter_folder, trained_steps
from sma.checkpoints import checkpoint_step, latest_checkpoint
from sma.config import GENERATION_PRECISIONS, TransferConfig, generation_dtype
from sma.errors import SmaError
from sma.methods import build_method, method_class
from sma.methods.base import Method, TrainedMethod, ZeroShotMethod
from sma.methods.image_to_video import check_image_inputs, image_for
from sma.phases import Phases
from sma.recipes import flatten, load_config
from sma.references import Reference, captioned, entry_path, resolve
from sma.report import (
    GUIDANCE_LOG,
    REFERENCES_DIR,
    plot_losses,
    read_guidance,
    read_metrics,
    sma_share,
    write_metrics,
    write_report,
)
from sma.run_folder import (
    ADAPTER_DIR,
    CONFIG_FILE,
    RUN_FILE,
    UNTUNED_DIR,
    RunFolder,
    file_hash,
    is_run_folder,
    one_writer,
    resumable_settings,
    resume_differences,
    slug,
    video_path,
)
from sma.training import train as train_loop
from sma.video import read_video, read_video_tensor, write_video
from sma.video.atomic import atomic_output, can_write_in, check_writable
from sma.video.errors import TooFewFramesError


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_reference(path: Path, config: TransferConfig) -> torch.Tensor:
    """The reference clip as (1, 3, f, h, w) in [-1, 1] at the configured frames and size."""
    video = config.video
    try:
        return read_video_tensor(
            path, video.frames, stride=video.stride, start=video.start, size=(video.height, video.width)
        )
    except TooFewFramesError:
        if len(read_video(path)) < 2:
            raise SmaError(f"{path} holds a single frame: motion transfer needs a video of at least 2") from None
        raise


def pin_sources(config: TransferConfig) -> None:
    """Local models and inputs named in the config as absolute paths: the run folder and its adapter then work
    from any directory (a Hub id stays as it is)."""
    if Path(config.model).expanduser().exists():
        config.model = str(Path(config.model).expanduser().resolve())
    config.references = [_pinned_entry(entry) for entry in config.references]
    config.image = _pinned_entry(config.image) if config.image else ""
    config.target_images = [_pinned_entry(image) for image in config.target_images]
    config.last_image = _pinned_entry(config.last_image) if config.last_image else ""
    for field in dataclasses.fields(config.options) if config.options is not None else ():
        value = getattr(config.options, field.name)
        if isinstance(value, str) and value and Path(value).expanduser().exists():
            setattr(config.options, field.name, str(Path(value).expanduser().resolve()))


def _pinned_entry(entry: str | dict) -> str | dict:
    path = Path(entry_path(entry)).expanduser()
    if not path.exists():
        return entry
    return {**entry, "path": str(path.resolve())} if isinstance(entry, dict) else str(path.resolve())


ReferenceArgument = str | os.PathLike | Sequence[str | os.PathLike] | None
ORDER = "sma.training.reference_draw: a permutation of the references per epoch of draws, from (seed, epoch)"


def with_references(config: TransferConfig, reference: ReferenceArgument) -> TransferConfig:
    """A copy of `config` whose `references` are the given ones (when given) and whose local paths are absolute;
    the caller's config stays as it was."""
    config = dataclasses.replace(config)
    given = [reference] if isinstance(reference, (str, os.PathLike)) else list(reference or ())
    if given:
        config.references = [str(path) for path in given]
    pin_sources(config)
    return config


def resolve_references(config: TransferConfig) -> list[Reference]:
    """The reference videos with their captions and hashes; one-line errors before anything loads."""
    references = captioned(resolve(config.references), config.prompt)
    method_class(config.method).check_references(config, len(references))
    return references


def hub_revision(config: TransferConfig) -> str:
    """The commit of a Hub model in the local cache when no revision was asked for, so that an adapter names
    exactly the weights it was trained on; the configured revision otherwise."""
    from sma.backbones.hub import cached_snapshot

    if config.revision or Path(config.model).exists():
        return config.revision
    snapshot = cached_snapshot(config.model, None)
    return snapshot.name if snapshot is not None else ""


def check_resume(run: RunFolder, config: TransferConfig, references: list[Reference]) -> None:
    """A resumed run continues the stored one: the same settings but those in RESUMABLE, the same references
    (contents and captions, in the same order: where they are may change), and no fewer steps than its latest
    checkpoint. Checked before any model loads."""
    if not run.resuming:
        return
    stored = flatten(load_config(run.out / CONFIG_FILE).to_dict())
    new = flatten(config.to_dict())
    del stored["references"], new["references"]  # compared by content below
    differences = resume_differences(stored, new)
    about_file = run.out / RUN_FILE
    about = json.loads(about_file.read_text()) if about_file.is_file() else {}
    if "references" in about:
        kept = [(entry["sha256"], entry["prompt"]) for entry in about["references"]]
        if kept != [(ref.sha256, ref.prompt) for ref in references]:
            stored_now = f"{len(kept)} stored, {len(references)} now"
            differences.insert(0, f"the reference videos ({stored_now}; their sha256, captions or order)")
    elif about.get("reference_sha256") not in (None, references[0].sha256) or len(references) > 1:
        differences.insert(0, "the reference video (its sha256)")
    if differences:
        raise SmaError(
            f"cannot resume {run.out}: {', '.join(differences)} differ from the stored run; only "
            f"{resumable_settings()} may change on resume (or set `overwrite` to start again)"
        )
    finished = trained_steps(run.out)
    if finished is not None and finished > config.train.steps:
        raise SmaError(
            f"{run.out} finished training at step {finished}: resuming keeps those steps, so set `train.steps` to "
            f"at least {finished} (or set `overwrite` to train a new run of {config.train.steps})"
        )
    checkpoint = latest_checkpoint(run.out)
    if checkpoint is not None and checkpoint_step(checkpoint) > config.train.steps:
        raise SmaError(
            f"`train.steps` is {config.train.steps} but {run.out} has a checkpoint at step "
            f"{checkpoint_step(checkpoint)}: set `train.steps` to at least that"
        )


class EmptyPromptWarning(UserWarning):
    """The reference has no prompt: the method conditions on the empty text."""


class SmaShareWarning(UserWarning):
    """SMA is most of the training loss: its weights, not the method's objective, set each step's direction."""


SMA_SHARE_WARNED = 0.9  # the hard world's ablation: VMC lost motion fidelity at 0.99 and 0.91, not at 0.5


def say_sma_share(share: float | None, phase: str = "training") -> None:
    """Print SMA's share of the `phase` loss (training, or a zero-shot method's guidance), and warn when it is above
    SMA_SHARE_WARNED."""
    if share is None:
        return
    tqdm.write(f"SMA's share of the {phase} loss: {share:.0%}")
    if share > SMA_SHARE_WARNED:
        warnings.warn(
            f"SMA was {share:.0%} of the {phase} loss, so its weights rather than the method's objective steered "
            f"the {phase} (at 91-99% it lowered motion fidelity in the hard world's ablation): scale "
            "`sma.global_weight` and `sma.local_weight` down until it is about half, or set `sma.share` "
            "(docs/library.md: Check the weights)",
            SmaShareWarning,
            stacklevel=2,
        )


def start_run(
    config: TransferConfig, references: list[Reference], run: RunFolder, device
) -> tuple[Method, list[torch.Tensor]]:
    """The method on its backbone and the reference clips; the run folder gets config.yaml, run.json (every
    reference's path, caption and sha256, and where the training order comes from), reference.mp4 (the first
    reference, the one generation starts from) and, with several, references/NN-name.mp4, all at once.

    Everything that can fail on a user's input (the clips, the model, the size) fails before the folder is touched.
    """
    if not references[0].prompt.strip():
        warnings.warn(
            "`prompt` is empty: describe what the reference shows; training and inversion condition on it",
            EmptyPromptWarning,
            stacklevel=2,
        )
    clips = [load_reference(reference.path, config) for reference in references]
    method = build_method(config, device)
    method.model.check_size(config.video.height, config.video.width)

    def write(folder: Path) -> None:
        first = write_video(folder / "reference.mp4", clips[0], overwrite=True)
        if len(clips) > 1:  # the first is a copy: x264 may encode the same frames to another stream a second time
            (folder / REFERENCES_DIR).mkdir(exist_ok=True)
            shutil.copyfile(first, folder / REFERENCES_DIR / f"00-{slug(references[0].path.stem)}.mp4")
            for index, (reference, clip) in enumerate(zip(references[1:], clips[1:], strict=True), start=1):
                write_video(folder / REFERENCES_DIR / f"{index:02d}-{slug(reference.path.stem)}.mp4", clip)
        about = {
            "reference": str(references[0].path),
            "reference_sha256": references[0].sha256,
            "references": [reference.describe() for reference in references],
            "reference_order": {"rule": ORDER, "seed": config.seed},
        }
        (folder / RUN_FILE).write_text(json.dumps(about, indent=1))
        config.save(folder / CONFIG_FILE)

    run.begin(write)
    return method, clips


def make_accelerator(config: TransferConfig) -> Accelerator:
    """An accelerator with the run's precision and accumulation, whatever an earlier run in this process set."""
    AcceleratorState._reset_state()  # a process may train several runs, each with its own precision
    return Accelerator(
        cpu=not torch.cuda.is_available(),  # lets `accelerate launch` / torchrun run data-parallel on CPU processes
        mixed_precision=config.train.mixed_precision,
        gradient_accumulation_steps=config.train.gradient_accumulation,
    )


def train(
    config: TransferConfig,
    reference: ReferenceArgument,
    out: Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
) -> Path:
    """Distill the motion of the reference into an adapter; returns the run folder.

    `reference`: a video, a folder of captioned videos, or a list of them; None (or empty) takes
    `config.references`. With several, each training step draws one (`sma.training.reference_draw`).
    """
    if not method_class(config.method).trains:
        raise SmaError(f"{config.method} trains nothing: transfer guides generation directly")
    config = with_references(config, reference)
    check_sections(config)
    references = resolve_references(config)
    accelerator = make_accelerator(config)
    with RunFolder(out, overwrite=overwrite, resume=resume, main=accelerator.is_main_process) as run:
        _train(accelerator, config, references, run)
    return Path(out)


def _train(accelerator: Accelerator, config: TransferConfig, references: list[Reference], run: RunFolder) -> None:
    """Train into `run`; a resumed run whose training finished at `train.steps` keeps its adapter as it is."""
    check_resume(run, config, references)
    resuming = run.resuming
    if run.resume and not resuming and accelerator.is_main_process:
        tqdm.write(f"{run.out} holds no run to resume: starting a new one")
    if resuming and trained_steps(run.out) == config.train.steps:
        if accelerator.is_main_process:
            config.save(run.path / CONFIG_FILE)  # its new targets (only RESUMABLE settings can differ)
            tqdm.write(f"{run.out} finished training at step {config.train.steps}: its adapter is kept as it is")
        return
    if config.train.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise SmaError(
            "`train.mixed_precision: fp16` (the GPU recipes') needs a GPU: on the CPU train with "
            "--mixed-precision no (or bf16)"
        )
    method, clips = start_run(config, references, run, accelerator.device)
    accelerator.wait_for_everyone()
    model, batch = method.model, config.train.batch_size
    conditions = [method.condition_on(clip) for clip in clips]
    latents = [model.encode_video(clip).repeat(batch, 1, 1, 1, 1) for clip in clips]  # once per reference
    captions = {caption: model.encode_prompts([caption] * batch) for caption in {ref.prompt for ref in references}}
    text = [captions[reference.prompt] for reference in references]
    model.release_text_encoder()  # training needs no other prompt; generation loads the model again
    model.move_encoders("cpu")
    phases = Phases()
    kept = not run.overwrite  # a replacement that fails is discarded
    history = train_loop(
        accelerator, method, latents, text, config.train, config.seed, run.path, resuming, phases, kept, conditions
    )
    if accelerator.is_main_process:
        pinned = copy.deepcopy(config)
        pinned.revision = hub_revision(config)
        # generation starts from the first reference: its latents, conditions and caption (the source prompt of
        # the methods that invert with it) go with the adapter
        pinned.prompt = references[0].prompt
        Adapter(method.adapter_state(), latents[0][:1].cpu(), pinned, conditions[0]).save(run.path / ADAPTER_DIR)
        plot_losses(history, run.path / "loss_curves.png")
        share = sma_share(history)
        plan = method.checkpointing_plan
        checkpointing = {} if plan is None else {"checkpointing": plan.summary()}
        write_metrics(run.path, {"phases": phases.summary(), "sma_share": share} | checkpointing)
        say_sma_share(share)
        if resuming:  # the settings it ended with (only RESUMABLE ones can differ)
            config.save(run.path / CONFIG_FILE)
    accelerator.wait_for_everyone()


def adapter_for_generation(
    adapter_dir: Path,
    precision: str | None = None,
    model: str | None = None,
    settings: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
) -> Adapter:
    """The adapter, its settings changed for generation (`for_generation`); checked before any model loads."""
    adapter = Adapter.load(adapter_dir)
    adapter.config = for_generation(adapter.config, precision, model, settings, inputs)
    return adapter


def for_generation(
    config: TransferConfig,
    precision: str | None = None,
    model: str | None = None,
    settings: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
) -> TransferConfig:
    """A run's settings changed for generation: its generation `precision`, its base `model`, `settings` of the
    backbones' sections (recipe keys, dotted: {"SECTION.KEY": value}) and `inputs` (its `targets`, `image`,
    `target_images` and `last_image`); checked before any model loads."""
    for key, value in (inputs or {}).items():
        setattr(config, key, value)
    if settings:
        config = with_section_settings(config, settings)
    check_sections(config)
    if precision is not None:
        if precision not in GENERATION_PRECISIONS:
            raise SmaError(f"precision must be one of {', '.join(GENERATION_PRECISIONS)}, got {precision!r}")
        config.generate.precision = precision
    if model is not None:
        config.model, config.revision = model, ""
        pin_sources(config)
    elif Path(config.model).is_absolute() and not Path(config.model).exists():
        raise SmaError(f"the adapter's base model {config.model} is gone: set `model` to where it is now")
    if inputs is not None:
        check_image_inputs(config)
    return config


def with_section_settings(config: TransferConfig, settings: dict[str, Any]) -> TransferConfig:
    """`config` with `settings` ({"SECTION.KEY": value}) of the backbones' sections, checked as a recipe is."""
    for key in settings:
        if key.partition(".")[0] not in config.sections:
            raise SmaError(
                f"`{key}` is not a setting generation can change: those of the sections {', '.join(config.sections)}"
            )
    return load_config(overrides=flatten(config.to_dict()) | settings)


def trained_method(adapter: Adapter, device: str | torch.device) -> TrainedMethod:
    """The adapter's method on its base model with the adapter applied, in its generation precision."""
    method = build_method(adapter.config, device)
    method.prepare()
    method.load_adapter(adapter.tensors)
    method.set_conditions(adapter.conditions)
    method.model.to(device, generation_dtype(adapter.config.generate.precision, device))
    return method


def load_trained(
    adapter_dir: Path,
    device: str | torch.device = "cpu",
    precision: str | None = None,
    model: str | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[TrainedMethod, Adapter]:
    """The base model (the adapter's, or `model`) with the adapter applied (`adapter_for_generation`)."""
    adapter = adapter_for_generation(adapter_dir, precision, model, settings)
    return trained_method(adapter, device), adapter


GENERATION_FILE = "generation.json"  # what made a folder's videos: `resume` keeps only videos it would make again


def generate(
    adapter_dir: Path,
    targets: list[str],
    out: Path,
    *,
    seed: int | None = None,
    precision: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    model: str | None = None,
    settings: dict[str, Any] | None = None,
    image: str | None = None,
    target_images: list[str] | None = None,
    last_image: str | None = None,
) -> list[Path]:
    """Videos for each target prompt from a trained adapter (`adapter_dir`: its folder or its run's; on its base
    model, or `model`) or from the run folder of a method that trains nothing (DMT, FlowMotion: its settings and
    reference), each started from `image` or its one of `target_images` on an image-to-video model, and ending on
    `last_image` on a first-and-last-frame one (default: the adapter's); returns the mp4 paths of the last stage run
    (the base stage, or the last that the backbone's sections add: `BackboneSection.later_stages`, which `settings`
    may change, as for `adapter_for_generation`). `resume` keeps the videos an interrupted generation of the same
    adapter and settings finished (GENERATION_FILE says what made them) and makes the rest. One writer per folder:
    `out` is locked as a run folder is. A failure leaves no empty `out` behind."""
    if not targets:
        raise SmaError("give at least one target prompt (`targets`)")
    if overwrite and resume:
        raise SmaError("set either `resume` (keep the videos made) or `overwrite` (make them again), not both")
    out = Path(out)
    created = not out.exists()
    try:
        inputs: dict[str, Any] = {"targets": list(targets)}
        if image is not None or target_images:
            inputs |= {"image": image or "", "target_images": list(target_images or [])}
        if last_image is not None:
            inputs["last_image"] = last_image
        config, source, adapter = generation_source(adapter_dir, precision, model, settings, inputs)
        seed = config.seed if seed is None else seed
        made_by = source if adapter is not None else source / CONFIG_FILE  # not the run folder: videos go there
        record = {"source": str(source.resolve()), "sha256": file_hash(made_by), "seed": seed} | {
            "settings": {key: value for key, value in flatten(config.to_dict()).items() if key != "targets"},
            "targets": list(targets),
        }
        with one_writer(out):
            kept = finished_videos(out, record, config.later_stages()) if resume else set()
            check_outputs(out, targets, overwrite, config.later_stages(), kept=kept)
            (out / GENERATION_FILE).write_text(json.dumps(record, indent=1))
            method, latents = generation_method(config, adapter, default_device())
            write_videos(method, latents, targets, out, seed, overwrite, Phases(), kept=kept)
    except BaseException:
        if created and not (out / "videos").exists():  # the folder it made, holding no video: leave nothing
            with contextlib.suppress(OSError):
                (out / GENERATION_FILE).unlink(missing_ok=True)
                out.rmdir()
        raise
    last = ["base", *config.later_stages()][-1]
    return [video_path(out, index, target, last) for index, target in enumerate(targets)]


def generation_source(
    path: Path, precision: str | None, model: str | None, settings: dict[str, Any] | None, inputs: dict[str, Any]
) -> tuple[TransferConfig, Path, Adapter | None]:
    """What `generate` starts from, its settings changed for generation (`for_generation`): a trained adapter
    (its folder, or its run's: the adapter is returned) or the run folder of a method that trains nothing (None)."""
    path = Path(path)
    if is_run_folder(path) and not (path / ADAPTER_DIR).exists():
        config = load_config(path / CONFIG_FILE)
        if not method_class(config.method).trains:
            return for_generation(config, precision, model, settings, inputs), path, None
    adapter_dir = adapter_folder(path)
    adapter = adapter_for_generation(adapter_dir, precision, model, settings, inputs)
    return adapter.config, adapter_dir, adapter


def generation_method(config: TransferConfig, adapter: Adapter | None, device: str) -> tuple[Method, torch.Tensor]:
    """The method that generates, and the latents it starts from: the adapter's, or a zero-shot run's reference
    (read again from where the run read it, as `transfer` does)."""
    if adapter is not None:
        return trained_method(adapter, device), adapter.reference_latents
    method = build_method(config, device)
    return method, untrained_start(method, load_reference(resolve_references(config)[0].path, config), device)


def untrained_start(method: Method, clip: torch.Tensor, device: str) -> torch.Tensor:
    """A method that trains nothing made ready to generate from the reference `clip` (conditioned on it, in its
    generation precision); returns the clip's latents, where generation starts."""
    latents = method.model.encode_video(clip)
    method.set_conditions(method.condition_on(clip))  # ControlVideo untuned: the reference's depth
    method.model.to(device, generation_dtype(method.config.generate.precision, device))
    return latents


def finished_videos(out: Path, record: dict, later_stages: Sequence[str]) -> set[int]:
    """The targets (indexes) whose every video an earlier generation into `out` finished, when it had the same
    source, seed and settings (its GENERATION_FILE); refused otherwise, since its videos would not be these."""
    path = out / GENERATION_FILE
    earlier = json.loads(path.read_text()) if path.is_file() else None
    if earlier is None:
        return set()
    differences = [key for key in ("source", "sha256", "seed", "settings") if earlier.get(key) != record[key]]
    if differences:
        raise SmaError(
            f"the videos in {out} were made with another {', '.join(differences)}: set `overwrite` to make them again"
        )
    if later_stages:
        raise SmaError("`resume` cannot keep part of a cascade (its stages seed by position): set `overwrite`")
    return {
        index
        for index, target in enumerate(record["targets"])
        if index < len(earlier["targets"])
        and earlier["targets"][index] == target
        and video_path(out, index, target).with_suffix(".gif").is_file()  # written after the mp4
    }


def write_output(path: Path, video: torch.Tensor, overwrite: bool) -> Path:
    """A generated video as `path` (mp4) and beside it as a gif; returns `path`."""
    write_video(path, video, overwrite=overwrite)
    write_video(path.with_suffix(".gif"), video, overwrite=overwrite)
    return path


def check_outputs(
    out: Path,
    targets: list[str],
    overwrite: bool,
    later_stages: Sequence[str] = (),
    folder: str = "videos",
    kept: Collection[int] = (),
) -> None:
    """Fail before any work when a video exists, of the base stage or of `later_stages` (and `overwrite` is not
    set), or `out` cannot be written; the targets `kept` (indexes) are not made again."""
    for index, target in enumerate(targets):
        if index in kept:
            continue
        for stage in ["base", *later_stages]:
            path = video_path(out, index, target, stage, folder)
            check_writable(path, overwrite)
            check_writable(path.with_suffix(".gif"), overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SmaError(f"cannot create {out}: {error.strerror}") from error
    if not can_write_in(out):
        raise SmaError(f"cannot write in {out}: permission denied")


def write_videos(
    method: Method,
    reference_latents: torch.Tensor,
    targets: list[str],
    out: Path,
    seed: int,
    overwrite: bool,
    phases: Phases,
    kept: Collection[int] = (),
) -> list[Path]:
    """Generate each target (seed + its index) into out/videos/ as mp4 and gif, but those `kept` (indexes: made
    earlier); returns the mp4 paths.

    A zero-shot method's per-iteration guidance losses go to out/guidance_log.json, by target. Stages that the
    backbone's sections add then take every video further (see `write_later_stages`). With `generate.compile`, the
    denoiser's repeated blocks are compiled first (`LatentVideoModel.compile_layers`).
    """
    paths, guidance, videos = [], [], []
    if method.config.generate.compile:
        method.model.compile_layers()
    for index, target in enumerate(targets):
        if index in kept:
            tqdm.write(f"kept {index + 1}/{len(targets)}: {target}")
            paths.append(video_path(out, index, target))
            continue
        tqdm.write(f"generating {index + 1}/{len(targets)}: {target}")
        with phases("generate"):
            latents = method.generate(reference_latents, target, seed + index)
        if isinstance(method, ZeroShotMethod):
            guidance += [{"target": target, **record} for record in method.guidance_log]
        with phases("decode"):
            video = method.model.decode_latents(latents)
        paths.append(write_output(video_path(out, index, target), video, overwrite))
        videos.append(video)
    if guidance:
        with atomic_output(out / GUIDANCE_LOG, overwrite=True) as temporary:
            temporary.write_text(json.dumps(guidance, indent=1))
    if method.config.later_stages():
        write_later_stages(method, videos, targets, out, seed, overwrite, phases)
    return paths


def untuned_method(
    config: TransferConfig,
    device: str | torch.device,
    clip: torch.Tensor | None = None,
    conditions: dict[str, torch.Tensor] | None = None,
) -> Method:
    """The method on its backbone as loaded (nothing prepared, nothing trained), in the generation precision,
    conditioned as its generation is: on `conditions` (an adapter's), or on what `condition_on(clip)` gives
    (ControlVideo: the depth of the reference)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # what a trained model freed before this one loads
    method = build_method(config, device)
    method.model.check_size(config.video.height, config.video.width)
    method.set_conditions(method.condition_on(clip) if conditions is None else conditions)
    method.model.to(device, generation_dtype(config.generate.precision, device))
    return method


def write_untuned(method: Method, targets: list[str], out: Path, seed: int, overwrite: bool) -> list[Path]:
    """Each target as `method`'s untuned backbone samples it (`Method.generate_untuned`, from fresh noise seeded
    with seed + the target's index, as `write_videos` seeds), into out/untuned/ as mp4 and gif; returns the mp4
    paths."""
    paths = []
    for index, target in enumerate(targets):
        tqdm.write(f"sampling the untuned model {index + 1}/{len(targets)}: {target}")
        video = method.model.decode_latents(method.generate_untuned(target, seed + index))
        paths.append(write_output(video_path(out, index, target, folder=UNTUNED_DIR), video, overwrite))
    return paths


def untuned(config: TransferConfig, reference: ReferenceArgument, out: Path, *, overwrite: bool = False) -> list[Path]:
    """The baseline of a transfer: each of `config.targets` as the method's backbone samples it before any
    training, from fresh noise, with the method's sampler settings and conditions (ControlVideo: the depth of
    the first reference; DMT, which trains nothing: plain sampling). Written as out/untuned/NN-target.mp4 (and
    .gif); returns the mp4 paths. `reference` as for `transfer`."""
    if not config.targets:
        raise SmaError("give at least one target prompt (`targets`)")
    config = with_references(config, reference)
    check_image_inputs(config)
    references = resolve_references(config)
    check_outputs(Path(out), config.targets, overwrite, folder=UNTUNED_DIR)
    device = default_device()
    method = untuned_method(config, device, clip=load_reference(references[0].path, config))
    return write_untuned(method, config.targets, Path(out), config.seed, overwrite)


def check_sections(config: TransferConfig) -> None:
    """What the backbones' sections refuse (`BackboneSection.check`), before anything loads."""
    for section in config.sections.values():
        section.check(config)


def write_later_stages(
    method: Method, videos: list[torch.Tensor], targets: list[str], out: Path, seed: int, overwrite, phases
) -> None:
    """The stages the backbones' sections add (`BackboneSection.run_later_stages`) on every generated video (one
    per target), each stage's videos written as NN-target.STAGE.mp4 (phase "cascade")."""
    negative = method.config.generate.negative_prompt
    for section in method.config.sections.values():
        if not section.later_stages():
            continue
        with section.run_later_stages(method.model, videos, targets, negative, seed) as stages, phases("cascade"):
            for stage, outputs in stages:
                for index, (target, video) in enumerate(zip(targets, outputs, strict=True)):
                    write_output(video_path(out, index, target, stage), video, overwrite)


def transfer(
    config: TransferConfig,
    reference: ReferenceArgument,
    out: Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    tune: bool = True,
) -> Path:
    """Train on the reference or references (zero-shot methods skip this), generate every target from the
    first reference, compare and measure (against every reference: `write_report`); with `generate.untuned`,
    each target from the untuned model too (`untuned`), compared and measured beside the outputs.

    `tune=False` skips the training: the backbone as loaded generates as the method would (its inversion of
    the reference, start and sampler), the control that says what the training adds.

    Returns the run folder; with `overwrite`, the run it replaces stays until this one has succeeded.
    """
    if not config.targets:
        raise SmaError("give at least one target prompt (`targets`)")
    trains = tune and method_class(config.method).trains
    if resume and not trains:
        raise SmaError(
            f"this {config.method} run trains nothing, so there is nothing to resume: generate more targets from its "
            "folder (sma generate --adapter RUN_FOLDER), or set `overwrite` to run it again"
        )
    config = with_references(config, reference)
    check_sections(config)
    check_image_inputs(config)
    references = resolve_references(config)
    accelerator = make_accelerator(config) if trains else None
    main = accelerator is None or accelerator.is_main_process
    phases = Phases()
    with RunFolder(out, overwrite=overwrite, resume=resume, main=main) as run:
        device = default_device()
        if trains:
            _train(accelerator, config, references, run)
            if not PartialState().is_main_process:  # data-parallel training: one process generates
                return Path(out)
            method, adapter = load_trained(run.path / ADAPTER_DIR, device)
            latents = adapter.reference_latents
        else:
            config = dataclasses.replace(config, prompt=references[0].prompt)  # its own caption, if it has one
            method, clips = start_run(config, references, run, device)
            latents = untrained_start(method, clips[0], device)
        paths = write_videos(method, latents, config.targets, run.path, config.seed, True, phases)
        trained = read_metrics(run.path)  # what training wrote: its phases and SMA's share of the loss
        share = trained.get("sma_share")  # training printed it
        if not trains:  # SMA's share of a zero-shot method's guidance losses
            share = sma_share(read_guidance(run.path))
            say_sma_share(share, "guidance")
        timings = trained.get("phases", {}) | method.phases.summary()
        baseline = []
        if config.generate.untuned:
            if trains:  # the backbone again, without the trained weights (the trained model is freed first)
                del method
                method = untuned_method(adapter.config, device, conditions=adapter.conditions)
            baseline = write_untuned(method, config.targets, run.path, config.seed, True)
            timings |= method.phases.summary()
        extra = {"phases": timings | phases.summary(), "sma_share": share}
        plan = method.checkpointing_plan  # a zero-shot method's; a trained one's is in training's metrics
        extra |= {"checkpointing": plan.summary()} if plan is not None else {}
        extra |= {key: trained[key] for key in ("checkpointing",) if key in trained}
        images = [Path(image_for(config, target)) for target in config.targets if image_for(config, target)]
        write_report(run.path, config.targets, paths, extra, baseline, images)
    return Path(out)


__all__ = ["Adapter", "generate", "train", "transfer", "untuned"]
