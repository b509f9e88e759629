"""The `sma` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse

import sma


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sma",
        description="Video motion transfer with diffusion models and Spectral Motion Alignment.",
    )
    parser.add_argument("--version", action="version", version=f"sma {sma.__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
