"""Run folders: `train`, `generate` and `transfer` as Python functions.

The command line is a thin layer over these. A run folder holds the resolved config, the
reference clip, the adapter, checkpoints, the loss log and curves, one video per target,
a side-by-side comparison and metrics.json.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from safetensors.torch import load_file, save_file

import sma
from sma.config import PRECISIONS, TransferConfig, load_config
from sma.errors import SmaError
from sma.methods import METHODS, MotionMethod, build_method
from sma.training import train as train_loop
from sma.video import read_video_tensor, write_grid, write_video
from sma.video.atomic import atomic_output

ADAPTER_FORMAT = "sma-adapter"
REFERENCE_FILE = "reference_latents.safetensors"  # "latents" and the conditions, by name


@dataclass
class Adapter:
    """What `sma generate` needs besides the base model: trained tensors, reference latents, settings,
    and what the model is conditioned on (ControlVideo's depth frames)."""

    tensors: dict[str, torch.Tensor]
    reference_latents: torch.Tensor
    config: TransferConfig
    conditions: dict[str, torch.Tensor] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        with atomic_output(folder, overwrite=True) as staging:
            staging.mkdir()
            save_file(self.tensors, staging / "adapter.safetensors")
            reference = {"latents": self.reference_latents, **self.conditions}
            save_file({name: tensor.contiguous() for name, tensor in reference.items()}, staging / REFERENCE_FILE)
            about = {
                "format": ADAPTER_FORMAT,
                "sma_version": sma.__version__,
                "method": self.config.method,
                "base_model": self.config.model,
                "sma": self.config.sma.enabled,
                "tensors": len(self.tensors),
                "config": self.config.to_dict(),
            }
            (staging / "adapter.json").write_text(json.dumps(about, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Adapter:
        folder = Path(folder)
        about_file = folder / "adapter.json"
        if not about_file.is_file():
            raise SmaError(f"no adapter at {folder}: expected adapter.json and adapter.safetensors (made by sma train)")
        about = json.loads(about_file.read_text())
        if about.get("format") != ADAPTER_FORMAT:
            raise SmaError(f"{about_file} is not an sma adapter")
        config = load_config(overrides=_flatten(about["config"]))
        conditions = load_file(folder / REFERENCE_FILE)
        return cls(
            tensors=load_file(folder / "adapter.safetensors"),
            reference_latents=conditions.pop("latents"),
            config=config,
            conditions=conditions,
        )


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_run_dir(out: Path, overwrite: bool, resume: bool) -> Path:
    """Refuse to touch an existing run unless asked, before any slow work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SmaError(f"{out} is a file, not a run folder")
    if out.exists() and any(out.iterdir()) and not (overwrite or resume):
        raise SmaError(f"{out} already holds a run: pass --resume to continue it or --overwrite to replace it")
    return out


def create_run_dir(out: Path, overwrite: bool, resume: bool) -> Path:
    if overwrite and not resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_reference(path: Path, config: TransferConfig) -> torch.Tensor:
    """The reference clip as (1, 3, f, h, w) in [-1, 1] at the configured frames and size."""
    video = config.video
    return read_video_tensor(
        path, video.frames, stride=video.stride, start=video.start, size=(video.height, video.width)
    )


def train(config: TransferConfig, reference: Path, out: Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Distill the motion of `reference` into an adapter; returns the run folder."""
    if not METHODS[config.method].trains:
        raise SmaError(f"{config.method} trains nothing: run sma transfer, which guides generation directly")
    out = check_run_dir(out, overwrite, resume)
    AcceleratorState._reset_state()  # a process may train several runs, each with its own precision
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # lets `accelerate launch` / torchrun run data-parallel on CPU processes
        mixed_precision=config.train.mixed_precision,
        gradient_accumulation_steps=config.train.gradient_accumulation,
    )
    method = build_method(config, accelerator.device)
    model = method.model
    model.check_size(config.video.height, config.video.width)
    clip = load_reference(reference, config)
    run_dir = create_run_dir(out, overwrite, resume) if accelerator.is_main_process else out
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        config.save(run_dir / "config.yaml")
        write_video(run_dir / "reference.mp4", clip, overwrite=True)
    conditions = method.condition_on(clip)
    method.set_conditions(conditions)
    latents = model.encode_video(clip).repeat(config.train.batch_size, 1, 1, 1, 1)
    text = model.encode_prompts([config.prompt] * config.train.batch_size)
    history = train_loop(accelerator, method, latents, text, config.train, config.seed, run_dir, resume)
    if accelerator.is_main_process:
        Adapter(method.adapter_state(), latents[:1].cpu(), config, conditions).save(run_dir / "adapter")
        plot_losses(history, run_dir / "loss_curves.png")
    accelerator.wait_for_everyone()
    return run_dir


def load_trained(
    adapter_dir: Path, device: str | torch.device = "cpu", precision: str | None = None
) -> tuple[MotionMethod, Adapter]:
    """The base model with the adapter applied, in the adapter's (or the given) generation precision."""
    adapter = Adapter.load(adapter_dir)
    if precision is not None:
        adapter.config.generate.precision = precision
        adapter.config.validate()
    method = build_method(adapter.config, device)
    method.prepare()
    method.load_adapter(adapter.tensors)
    method.set_conditions(adapter.conditions)
    method.model.to(device, PRECISIONS[adapter.config.generate.precision])
    return method, adapter


def slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "video"


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
        raise SmaError("give at least one target prompt (--target TEXT)")
    method, adapter = load_trained(adapter_dir, "cuda" if torch.cuda.is_available() else "cpu", precision)
    seed = adapter.config.seed if seed is None else seed
    return write_videos(method, adapter.reference_latents, targets, Path(out), seed, overwrite)


def write_videos(
    method: MotionMethod, reference_latents: torch.Tensor, targets: list[str], out: Path, seed: int, overwrite: bool
) -> list[Path]:
    """Generate each target (seed + its index) into out/videos/ as mp4 and gif; returns the mp4 paths.

    A guided method's per-iteration losses (DMT) go to out/guidance_log.json, by target.
    """
    paths, guidance = [], []
    for index, target in enumerate(targets):
        latents = method.generate(reference_latents, target, seed + index)
        guidance += [{"target": target, **record} for record in method.guidance_log]
        video = method.model.decode_latents(latents)
        path = out / "videos" / f"{index:02d}-{slug(target)}.mp4"
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
        raise SmaError("give at least one target prompt (--target TEXT)")
    if METHODS[config.method].trains:
        check_run_dir(out, overwrite, resume)
        run_dir = train(config, reference, out, overwrite=overwrite, resume=resume)
        if not PartialState().is_main_process:  # data-parallel training: one process generates
            return run_dir
        paths = generate(run_dir / "adapter", config.targets, run_dir, overwrite=True)
    else:
        run_dir, paths = transfer_zero_shot(config, reference, out, overwrite=overwrite, resume=resume)
    write_report(run_dir, config.targets, paths)
    return run_dir


def transfer_zero_shot(
    config: TransferConfig, reference: Path, out: Path, *, overwrite: bool, resume: bool
) -> tuple[Path, list[Path]]:
    """A method that trains nothing generates straight from the reference: no adapter, checkpoints or losses."""
    if resume:
        raise SmaError(f"{config.method} trains nothing, so there is nothing to resume: use --overwrite")
    out = check_run_dir(out, overwrite, resume=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    method = build_method(config, device)
    model = method.model
    model.check_size(config.video.height, config.video.width)
    clip = load_reference(reference, config)
    run_dir = create_run_dir(out, overwrite, resume=False)
    config.save(run_dir / "config.yaml")
    write_video(run_dir / "reference.mp4", clip, overwrite=True)
    latents = model.encode_video(clip)
    model.to(device, PRECISIONS[config.generate.precision])
    return run_dir, write_videos(method, latents, config.targets, run_dir, config.seed, overwrite=True)


def write_report(run_dir: Path, targets: list[str], paths: list[Path]) -> None:
    """Side-by-side video of the reference and the outputs, and metrics.json."""
    from sma.metrics.motion_fidelity import motion_fidelity
    from sma.video import read_video

    reference = read_video(run_dir / "reference.mp4")
    outputs = [read_video(path) for path in paths]
    write_grid(run_dir / "comparison.mp4", [reference, *outputs], ["reference", *targets], overwrite=True)
    metrics = {
        "reference": "reference.mp4",
        "outputs": [
            {"target": target, "video": str(path.relative_to(run_dir)), **motion_fidelity(reference, frames).as_dict()}
            for target, path, frames in zip(targets, paths, outputs, strict=True)
        ],
    }
    with atomic_output(run_dir / "metrics.json", overwrite=True) as temporary:
        temporary.write_text(json.dumps(metrics, indent=2))


def plot_losses(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in history[0] if name != "step"] if history else []
    figure, axes = plt.subplots(len(names) or 1, 1, figsize=(6, 1.8 * max(1, len(names))), sharex=True, squeeze=False)
    for axis, name in zip(axes[:, 0], names, strict=False):
        axis.plot([record["step"] + 1 for record in history], [record[name] for record in history], linewidth=1)
        axis.set_ylabel(name, fontsize=8)
    axes[-1, 0].set_xlabel("step")
    figure.tight_layout()
    with atomic_output(path, overwrite=True) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)


__all__ = ["Adapter", "generate", "train", "transfer"]
