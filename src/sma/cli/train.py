"""`sma train`: distill the motion of a reference video into an adapter."""

from __future__ import annotations

import argparse

from sma.cli.transfer import add_training_arguments, config_from


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser("train", help="distill the motion of a reference video into an adapter")
    add_training_arguments(parser)
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    from accelerate import PartialState

    from sma.runs import train

    run_dir = train(
        config_from(arguments),
        arguments.reference,
        arguments.out,
        overwrite=arguments.overwrite,
        resume=arguments.resume,
    )
    if PartialState().is_main_process:
        adapter = run_dir / "adapter"
        print(f"adapter in {adapter}; generate with: sma generate --adapter {adapter} --target TEXT")
    return 0
