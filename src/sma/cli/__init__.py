"""The `sma` command line: a thin layer over the Python API.

Each command lives in its own module with `add_parser(subcommands)`, which registers its
arguments and sets `run(arguments) -> int`. Heavy imports happen inside `run`, so
`sma --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

import sma
from sma.errors import SmaError

COMMAND_MODULES: tuple[str, ...] = ("evaluate",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sma",
        description="Video motion transfer with diffusion models and Spectral Motion Alignment.",
    )
    parser.add_argument("--version", action="version", version=f"sma {sma.__version__}")
    if COMMAND_MODULES:
        import importlib

        subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
        for name in COMMAND_MODULES:
            importlib.import_module(f"sma.cli.{name}").add_parser(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    run = getattr(arguments, "run", None)
    if run is None:
        parser.print_help()
        return 0
    try:
        return run(arguments) or 0
    except SmaError as error:
        print(f"sma: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sma: interrupted", file=sys.stderr)
        return 130
