"""`train`, `generate` and `transfer` as Python functions; the command line is a thin layer over these.

A run folder holds the resolved config, the reference clip, the adapter, checkpoints, the
loss log and curves, one video per target, a side-by-side comparison and metrics.json
(motion fidelity of each output, seconds and peak memory of each phase).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from tqdm.auto import tqdm

from sma.adapter import Adapter
from sma.checkpoints import checkpoint_step, latest_checkpoint
from sma.config import GENERATION_PRECISIONS, TransferConfig, generation_dtype
from sma.errors import SmaError
from sma.methods import build_method, method_class
from sma.methods.base import Method, TrainedMethod, ZeroShotMethod
from sma.phases import Phases
from sma.recipes import flatten, load_config
from sma.report import plot_losses, read_metrics, write_metrics, write_report
from sma.run_folder import (
    CONFIG_FILE,
    RUN_FILE,
    RunFolder,
    file_hash,
    resumable_settings,
    resume_differences,
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
    for field in dataclasses.fields(config.options) if config.options is not None else ():
        value = getattr(config.options, field.name)
        if isinstance(value, str) and value and Path(value).expanduser().exists():
            setattr(config.options, field.name, str(Path(value).expanduser().resolve()))


def hub_revision(config: TransferConfig) -> str:
    """The commit of a Hub model in the local cache when no revision was asked for, so that an adapter names
    exactly the weights it was trained on; the configured revision otherwise."""
    from sma.backbones.hub import cached_snapshot

    if config.revision or Path(config.model).exists():
        return config.revision
    snapshot = cached_snapshot(config.model, None)
    return snapshot.name if snapshot is not None else ""


def check_resume(run: RunFolder, config: TransferConfig, reference_hash: str) -> None:
    """A resumed run continues the stored one: the same settings but those in RESUMABLE, the same reference,
    and no fewer steps than its latest checkpoint. Checked before any model loads."""
    if not run.resuming:
        return
    stored = load_config(run.out / CONFIG_FILE)
    differences = resume_differences(flatten(stored.to_dict()), flatten(config.to_dict()))
    about_file = run.out / RUN_FILE
    stored_hash = json.loads(about_file.read_text()).get("reference_sha256") if about_file.is_file() else None
    if stored_hash not in (None, reference_hash):
        differences.insert(0, "the reference video (its sha256)")
    if differences:
        raise SmaError(
            f"cannot resume {run.out}: {', '.join(differences)} differ from the stored run; only "
            f"{resumable_settings()} may change on resume (or set `overwrite` to start again)"
        )
    checkpoint = latest_checkpoint(run.out)
    if checkpoint is not None and checkpoint_step(checkpoint) > config.train.steps:
        raise SmaError(
            f"`train.steps` is {config.train.steps} but {run.out} has a checkpoint at step "
            f"{checkpoint_step(checkpoint)}: set `train.steps` to at least that"
        )


class EmptyPromptWarning(UserWarning):
    """The reference has no prompt: the method conditions on the empty text."""


def start_run(
    config: TransferConfig, reference: Path, reference_hash: str, run: RunFolder, device
) -> tuple[Method, torch.Tensor]:
    """The method on its backbone and the reference clip; the run folder gets config.yaml, run.json and
    reference.mp4, all at once.

    Everything that can fail on a user's input (the clip, the model, the size) fails before the folder is touched.
    """
    if not config.prompt.strip():
        warnings.warn(
            "`prompt` is empty: describe what the reference shows; training and inversion condition on it",
            EmptyPromptWarning,
            stacklevel=2,
        )
    clip = load_reference(reference, config)
    method = build_method(config, device)
    method.model.check_size(config.video.height, config.video.width)

    def write(folder: Path) -> None:
        write_video(folder / "reference.mp4", clip, overwrite=True)
        about = {"reference": str(Path(reference).resolve()), "reference_sha256": reference_hash}
        (folder / RUN_FILE).write_text(json.dumps(about, indent=1))
        config.save(folder / CONFIG_FILE)

    run.begin(write)
    return method, clip


def make_accelerator(config: TransferConfig) -> Accelerator:
    """An accelerator with the run's precision and accumulation, whatever an earlier run in this process set."""
    AcceleratorState._reset_state()  # a process may train several runs, each with its own precision
    return Accelerator(
        cpu=not torch.cuda.is_available(),  # lets `accelerate launch` / torchrun run data-parallel on CPU processes
        mixed_precision=config.train.mixed_precision,
        gradient_accumulation_steps=config.train.gradient_accumulation,
    )


def _check_reference(reference: Path) -> str:
    """The reference's hash; a one-line error when there is none, before anything loads."""
    if not Path(reference).exists():
        raise SmaError(f"no reference video at {reference}")
    return file_hash(reference)


def train(config: TransferConfig, reference: Path, out: Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Distill the motion of `reference` into an adapter; returns the run folder."""
    if not method_class(config.method).trains:
        raise SmaError(f"{config.method} trains nothing: transfer guides generation directly")
    pin_sources(config)
    reference_hash = _check_reference(reference)
    accelerator = make_accelerator(config)
    with RunFolder(out, overwrite=overwrite, resume=resume, main=accelerator.is_main_process) as run:
        _train(accelerator, config, reference, reference_hash, run)
    return Path(out)


def _train(
    accelerator: Accelerator, config: TransferConfig, reference: Path, reference_hash: str, run: RunFolder
) -> None:
    check_resume(run, config, reference_hash)
    resuming = run.resuming
    method, clip = start_run(config, reference, reference_hash, run, accelerator.device)
    accelerator.wait_for_everyone()
    conditions = method.condition_on(clip)
    method.set_conditions(conditions)
    model = method.model
    latents = model.encode_video(clip).repeat(config.train.batch_size, 1, 1, 1, 1)
    text = model.encode_prompts([config.prompt] * config.train.batch_size)
    model.release_text_encoder()  # training needs no other prompt; generation loads the model again
    phases = Phases()
    kept = not run.overwrite  # a replacement that fails is discarded
    history = train_loop(
        accelerator, method, latents, text, config.train, config.seed, run.path, resuming, phases, kept
    )
    if accelerator.is_main_process:
        pinned = copy.deepcopy(config)
        pinned.revision = hub_revision(config)
        Adapter(method.adapter_state(), latents[:1].cpu(), pinned, conditions).save(run.path / "adapter")
        plot_losses(history, run.path / "loss_curves.png")
        write_metrics(run.path, {"phases": phases.summary()})
        if resuming:  # the settings it ended with (only RESUMABLE ones can differ)
            config.save(run.path / CONFIG_FILE)
    accelerator.wait_for_everyone()


def load_trained(
    adapter_dir: Path, device: str | torch.device = "cpu", precision: str | None = None, model: str | None = None
) -> tuple[TrainedMethod, Adapter]:
    """The base model (the adapter's, or `model`) with the adapter applied, in the adapter's (or the given)
    generation precision."""
    adapter = Adapter.load(adapter_dir)
    if precision is not None:
        if precision not in GENERATION_PRECISIONS:
            raise SmaError(f"precision must be one of {', '.join(GENERATION_PRECISIONS)}, got {precision!r}")
        adapter.config.generate.precision = precision
    if model is not None:
        adapter.config.model, adapter.config.revision = model, ""
        pin_sources(adapter.config)
    elif Path(adapter.config.model).is_absolute() and not Path(adapter.config.model).exists():
        raise SmaError(f"the adapter's base model {adapter.config.model} is gone: set `model` to where it is now")
    method = build_method(adapter.config, device)
    method.prepare()
    method.load_adapter(adapter.tensors)
    method.set_conditions(adapter.conditions)
    method.model.to(device, generation_dtype(adapter.config.generate.precision, device))
    return method, adapter


def generate(
    adapter_dir: Path,
    targets: list[str],
    out: Path,
    *,
    seed: int | None = None,
    precision: str | None = None,
    overwrite: bool = False,
    model: str | None = None,
) -> list[Path]:
    """Videos for each target prompt from a trained adapter (on its base model, or `model`); returns the mp4 paths."""
    if not targets:
        raise SmaError("give at least one target prompt (`targets`)")
    check_outputs(Path(out), targets, overwrite)
    method, adapter = load_trained(adapter_dir, default_device(), precision, model)
    seed = adapter.config.seed if seed is None else seed
    return write_videos(method, adapter.reference_latents, targets, Path(out), seed, overwrite, Phases())


def check_outputs(out: Path, targets: list[str], overwrite: bool) -> None:
    """Fail before any work when a video exists (and `overwrite` is not set) or `out` cannot be written."""
    for index, target in enumerate(targets):
        path = video_path(out, index, target)
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
) -> list[Path]:
    """Generate each target (seed + its index) into out/videos/ as mp4 and gif; returns the mp4 paths.

    A zero-shot method's per-iteration guidance losses go to out/guidance_log.json, by target.
    """
    paths, guidance = [], []
    for index, target in enumerate(targets):
        tqdm.write(f"generating {index + 1}/{len(targets)}: {target}")
        with phases("generate"):
            latents = method.generate(reference_latents, target, seed + index)
        if isinstance(method, ZeroShotMethod):
            guidance += [{"target": target, **record} for record in method.guidance_log]
        with phases("decode"):
            video = method.model.decode_latents(latents)
        path = video_path(out, index, target)
        write_video(path, video, overwrite=overwrite)
        write_video(path.with_suffix(".gif"), video, overwrite=overwrite)
        paths.append(path)
    if guidance:
        with atomic_output(out / "guidance_log.json", overwrite=True) as temporary:
            temporary.write_text(json.dumps(guidance, indent=1))
    return paths


def transfer(
    config: TransferConfig, reference: Path, out: Path, *, overwrite: bool = False, resume: bool = False
) -> Path:
    """Train on the reference (zero-shot methods skip this), generate every target, compare and measure.

    Returns the run folder; with `overwrite`, the run it replaces stays until this one has succeeded.
    """
    if not config.targets:
        raise SmaError("give at least one target prompt (`targets`)")
    trains = method_class(config.method).trains
    if resume and not trains:
        raise SmaError(f"{config.method} trains nothing, so there is nothing to resume: set `overwrite` instead")
    pin_sources(config)
    reference_hash = _check_reference(reference)
    accelerator = make_accelerator(config) if trains else None
    main = accelerator is None or accelerator.is_main_process
    phases = Phases()
    with RunFolder(out, overwrite=overwrite, resume=resume, main=main) as run:
        if trains:
            _train(accelerator, config, reference, reference_hash, run)
            if not PartialState().is_main_process:  # data-parallel training: one process generates
                return Path(out)
            method, adapter = load_trained(run.path / "adapter", default_device())
            paths = write_videos(method, adapter.reference_latents, config.targets, run.path, config.seed, True, phases)
        else:
            device = default_device()
            method, clip = start_run(config, reference, reference_hash, run, device)
            latents = method.model.encode_video(clip)
            method.model.to(device, generation_dtype(config.generate.precision, device))
            paths = write_videos(method, latents, config.targets, run.path, config.seed, True, phases)
        trained = read_metrics(run.path).get("phases", {})
        summary = {"phases": trained | method.phases.summary() | phases.summary()}
        write_report(run.path, config.targets, paths, summary)
    return Path(out)


__all__ = ["Adapter", "generate", "train", "transfer"]
