"""`sma generate`: new videos from a trained adapter, without training again."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser("generate", help="generate videos from a trained adapter")
    parser.add_argument("--adapter", type=Path, required=True, help="adapter folder made by sma train")
    parser.add_argument("--target", action="append", required=True, help="prompt of a video to generate (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the videos")
    parser.add_argument("--seed", type=int, help="sampling seed (default: the training seed)")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="weights and latents while sampling (auto: fp16 on a GPU)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing videos")
    parser.add_argument(
        "--model", help="base model, Hub id or local folder (default: the one the adapter was trained on)"
    )
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    from sma.runs import generate

    paths = generate(
        arguments.adapter,
        arguments.target,
        arguments.out,
        seed=arguments.seed,
        precision=arguments.precision,
        overwrite=arguments.overwrite,
        model=arguments.model,
    )
    for path in paths:
        print(path)
    return 0
