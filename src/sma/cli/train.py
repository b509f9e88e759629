"""`sma train`: distill the motion of a reference video into an adapter."""

from __future__ import annotations

import argparse

from sma.cli.transfer import add_training_arguments, run_in_main_process


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser("train", help="distill the motion of a reference video into an adapter")
    add_training_arguments(parser)
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    return run_in_main_process(
        "train",
        arguments,
        "adapter in {run_dir}/adapter; generate with: sma generate --adapter {run_dir}/adapter --target TEXT",
    )
