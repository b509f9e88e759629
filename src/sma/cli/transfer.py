"""`sma transfer`: train on a reference video, then generate every target prompt."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `transfer` and `train`; flags override the recipe."""
    parser.add_argument("reference", type=Path, help="reference video (mp4, gif, ... or a folder of frames)")
    parser.add_argument("--out", type=Path, required=True, help="run folder to create")
    parser.add_argument("--config", type=Path, help="YAML recipe (see configs/)")
    parser.add_argument("--method", help="vmc, motiondirector, tuneavideo, controlvideo or dmt (zero-shot)")
    parser.add_argument("--model", help="Hugging Face Hub id or local folder in diffusers layout")
    parser.add_argument("--prompt", help="what the reference video shows")
    parser.add_argument("--no-sma", dest="sma", action="store_false", default=None, help="run without SMA")
    parser.add_argument("--steps", type=int, help="training steps")
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--frames", type=int, help="frames taken from the reference")
    parser.add_argument("--height", type=int, help="pixel height")
    parser.add_argument("--width", type=int, help="pixel width")
    parser.add_argument("--seed", type=int, help="seed of training noise and sampling")
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), help="autocast dtype")
    parser.add_argument("--gradient-checkpointing", action="store_true", default=None, help="trade compute for memory")
    parser.add_argument("--controlnet", help="controlvideo: ControlNet-Depth, Hub id or local folder")
    parser.add_argument("--control-video", help="controlvideo: depth maps of the reference (video or frame folder)")
    parser.add_argument("--depth-model", help="controlvideo: transformers depth-estimation model, Hub id or folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")


def config_from(arguments: argparse.Namespace):
    from sma.config import load_config

    overrides = {
        "method": arguments.method,
        "model": arguments.model,
        "prompt": arguments.prompt,
        "targets": getattr(arguments, "target", None),
        "seed": arguments.seed,
        "sma.enabled": arguments.sma,
        "train.steps": arguments.steps,
        "train.learning_rate": arguments.lr,
        "train.mixed_precision": arguments.mixed_precision,
        "train.gradient_checkpointing": arguments.gradient_checkpointing,
        "video.frames": arguments.frames,
        "video.height": arguments.height,
        "video.width": arguments.width,
        "control.controlnet": arguments.controlnet,
        "control.video": arguments.control_video,
        "control.depth_model": arguments.depth_model,
    }
    return load_config(arguments.config, overrides)


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        "transfer", help="train on a reference video, then generate new appearances that move the same way"
    )
    add_training_arguments(parser)
    parser.add_argument("--target", action="append", help="prompt of a video to generate (repeatable)")
    parser.set_defaults(run=run)


def run_in_main_process(run, arguments: argparse.Namespace, message: str) -> int:
    """Run `sma.runs.train` or `transfer`; print where the results are from the main process only."""
    from accelerate import PartialState

    run_dir = run(
        config_from(arguments),
        arguments.reference,
        arguments.out,
        overwrite=arguments.overwrite,
        resume=arguments.resume,
    )
    if PartialState().is_main_process:
        curves = ", loss_curves.png" if (run_dir / "loss_curves.png").exists() else ""  # zero-shot methods have none
        print(message.format(run_dir=run_dir, curves=curves))
    return 0


def run(arguments: argparse.Namespace) -> int:
    from sma.runs import transfer

    return run_in_main_process(
        transfer, arguments, "results in {run_dir}: videos/, comparison.mp4, metrics.json{curves}"
    )
