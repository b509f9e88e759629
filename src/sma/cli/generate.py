"""`sma generate`: new videos from a trained adapter, without training again."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sma.backbones.show1_options import MODEL_KEYS, STAGES
from sma.cli.flags import IMAGE_FLAGS


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        "generate", help="generate videos from a trained adapter, or new targets of a zero-shot run (dmt, flowmotion)"
    )
    parser.add_argument(
        "--adapter",
        type=Path,
        required=True,
        help="adapter folder made by sma train or transfer, or its run folder; or the run folder of a method that "
        "trains nothing (dmt, flowmotion): its reference and settings",
    )
    parser.add_argument("--target", action="append", required=True, help="prompt of a video to generate (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the videos")
    for flag in IMAGE_FLAGS:  # the adapter's recipe keys, set for this generation
        metavar = flag.flag.removeprefix("--").upper().replace("-", "_")
        parser.add_argument(
            flag.flag, dest=flag.key, metavar=metavar, help=f"{flag.help} (default: the adapter's)", **flag.options
        )
    parser.add_argument("--seed", type=int, help="sampling seed (default: the training seed)")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="weights and latents while sampling (auto: fp16 on a GPU)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing videos")
    parser.add_argument(
        "--resume", action="store_true", help="keep the videos an interrupted generate into --out made; make the rest"
    )
    parser.add_argument(
        "--model", help="base model, Hub id or local folder (default: the one the adapter was trained on)"
    )
    parser.add_argument(
        "--stages",
        choices=STAGES,
        help="Show-1 only: generate through its cascade up to this stage (default: the adapter's show1.stages)",
    )
    parser.add_argument(
        "--stage-model",
        action="append",
        metavar="NAME=SOURCE",
        help=f"Show-1 cascade: a stage's model, Hub id or folder; NAME is one of {', '.join(MODEL_KEYS)} "
        "(repeatable; default: the adapter's show1 settings)",
    )
    parser.set_defaults(run=run)


def show1_settings(stages: str | None, pairs: list[str] | None) -> dict[str, str]:
    """`--stages` and the `--stage-model NAME=SOURCE` values -> the `show1` recipe keys they set."""
    from sma.errors import SmaError

    settings = {"show1.stages": stages} if stages is not None else {}
    for pair in pairs or []:
        name, _, source = pair.partition("=")
        if name not in MODEL_KEYS or not source:
            raise SmaError(f"--stage-model takes NAME=SOURCE with NAME one of {', '.join(MODEL_KEYS)}, got {pair!r}")
        settings[f"show1.{name}"] = source
    return settings


def run(arguments: argparse.Namespace) -> int:
    from sma.adapter import check_named

    check_named(arguments.adapter)  # before the model libraries load: a mistyped path is said at once
    from sma.runs import generate

    try:
        paths = generate(
            arguments.adapter,
            arguments.target,
            arguments.out,
            seed=arguments.seed,
            precision=arguments.precision,
            overwrite=arguments.overwrite,
            resume=arguments.resume,
            model=arguments.model,
            settings=show1_settings(arguments.stages, arguments.stage_model),
            image=arguments.image,
            target_images=arguments.target_images,
            last_image=arguments.last_image,
        )
    except KeyboardInterrupt:
        print("sma: the videos finished are kept: run the same command with --resume to make the rest", file=sys.stderr)
        raise
    for path in paths:
        print(path)
    return 0
