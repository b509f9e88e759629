"""`train`, `generate` and `transfer` as Python functions; the command line is a thin layer over these.

A run folder holds the resolved config, the reference clip, the adapter, checkpoints, the
loss log and curves, one video per target, a side-by-side comparison and metrics.json
(motion fidelity of each output, seconds and peak memory of each phase).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState

from sma.adapter import Adapter
from sma.config import GENERATION_PRECISIONS, TransferConfig, generation_dtype
from sma.errors import SmaError
from sma.methods import build_method, method_class
from sma.methods.base import Method, TrainedMethod, ZeroShotMethod
from sma.phases import Phases
from sma.report import plot_losses, read_metrics, write_metrics, write_report
from sma.run_folder import check_run_dir, create_run_dir, video_path
from sma.training import train as train_loop
from sma.video import read_video_tensor, write_video
from sma.video.atomic import atomic_output


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_reference(path: Path, config: TransferConfig) -> torch.Tensor:
    """The reference clip as (1, 3, f, h, w) in [-1, 1] at the configured frames and size."""
    video = config.video
    return read_video_tensor(
        path, video.frames, stride=video.stride, start=video.start, size=(video.height, video.width)
    )


def start_run(
    config: TransferConfig, reference: Path, out: Path, device, *, overwrite: bool, resume: bool, main: bool = True
) -> tuple[Method, torch.Tensor, Path]:
    """The method on its backbone, the reference clip, and the run folder holding config.yaml and reference.mp4.

    Everything that can fail on a user's input (the model, the size, the clip) fails before the folder is touched.
    """
    out = check_run_dir(out, overwrite, resume)
    method = build_method(config, device)
    method.model.check_size(config.video.height, config.video.width)
    clip = load_reference(reference, config)
    if main:
        run_dir = create_run_dir(out, overwrite, resume)
        config.save(run_dir / "config.yaml")
        write_video(run_dir / "reference.mp4", clip, overwrite=True)
    return method, clip, out


def train(config: TransferConfig, reference: Path, out: Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Distill the motion of `reference` into an adapter; returns the run folder."""
    if not method_class(config.method).trains:
        raise SmaError(f"{config.method} trains nothing: transfer guides generation directly")
    check_run_dir(out, overwrite, resume)
    AcceleratorState._reset_state()  # a process may train several runs, each with its own precision
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # lets `accelerate launch` / torchrun run data-parallel on CPU processes
        mixed_precision=config.train.mixed_precision,
        gradient_accumulation_steps=config.train.gradient_accumulation,
    )
    method, clip, run_dir = start_run(
        config, reference, out, accelerator.device, overwrite=overwrite, resume=resume, main=accelerator.is_main_process
    )
    accelerator.wait_for_everyone()
    conditions = method.condition_on(clip)
    method.set_conditions(conditions)
    model = method.model
    latents = model.encode_video(clip).repeat(config.train.batch_size, 1, 1, 1, 1)
    text = model.encode_prompts([config.prompt] * config.train.batch_size)
    phases = Phases()
    history = train_loop(accelerator, method, latents, text, config.train, config.seed, run_dir, resume, phases)
    if accelerator.is_main_process:
        Adapter(method.adapter_state(), latents[:1].cpu(), config, conditions).save(run_dir / "adapter")
        plot_losses(history, run_dir / "loss_curves.png")
        write_metrics(run_dir, {"phases": phases.summary()})
    accelerator.wait_for_everyone()
    return run_dir


def load_trained(
    adapter_dir: Path, device: str | torch.device = "cpu", precision: str | None = None
) -> tuple[TrainedMethod, Adapter]:
    """The base model with the adapter applied, in the adapter's (or the given) generation precision."""
    adapter = Adapter.load(adapter_dir)
    if precision is not None:
        if precision not in GENERATION_PRECISIONS:
            raise SmaError(f"precision must be one of {', '.join(GENERATION_PRECISIONS)}, got {precision!r}")
        adapter.config.generate.precision = precision
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
) -> list[Path]:
    """Videos for each target prompt from a trained adapter; returns the mp4 paths."""
    if not targets:
        raise SmaError("give at least one target prompt (`targets`)")
    method, adapter = load_trained(adapter_dir, default_device(), precision)
    seed = adapter.config.seed if seed is None else seed
    return write_videos(method, adapter.reference_latents, targets, Path(out), seed, overwrite, Phases())


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

    Returns the run folder.
    """
    if not config.targets:
        raise SmaError("give at least one target prompt (`targets`)")
    phases = Phases()
    if method_class(config.method).trains:
        check_run_dir(out, overwrite, resume)
        run_dir = train(config, reference, out, overwrite=overwrite, resume=resume)
        if not PartialState().is_main_process:  # data-parallel training: one process generates
            return run_dir
        method, adapter = load_trained(run_dir / "adapter", default_device())
        paths = write_videos(method, adapter.reference_latents, config.targets, run_dir, config.seed, True, phases)
    else:
        if resume:
            raise SmaError(f"{config.method} trains nothing, so there is nothing to resume: set `overwrite` instead")
        device = default_device()
        method, clip, run_dir = start_run(config, reference, out, device, overwrite=overwrite, resume=False)
        latents = method.model.encode_video(clip)
        method.model.to(device, generation_dtype(config.generate.precision, device))
        paths = write_videos(method, latents, config.targets, run_dir, config.seed, True, phases)
    trained = read_metrics(run_dir).get("phases", {})
    write_report(run_dir, config.targets, paths, {"phases": trained | method.phases.summary() | phases.summary()})
    return run_dir


__all__ = ["Adapter", "generate", "train", "transfer"]
