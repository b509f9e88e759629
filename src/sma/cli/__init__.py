"""The `sma` command line: a thin layer over the Python API.

Each command lives in its own module with `add_parser(subcommands)`, which registers its
arguments and sets `run(arguments) -> int`. Heavy imports happen inside `run`, so
`sma --help` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
import warnings

import sma
from sma.errors import SmaError

_PYTHON_FORMAT = warnings.formatwarning

COMMAND_MODULES: tuple[str, ...] = ("transfer", "train", "generate", "export", "evaluate", "benchmark", "demo", "ui")


class Parser(argparse.ArgumentParser):
    """argparse's parser, taking "-1e-4" as a value: before Python 3.13 only "-1" and "-0.1" were numbers, so
    `--lr -1e-4` failed with "expected one argument" instead of saying what is wrong with the rate."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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


def quiet_libraries() -> None:
    """Keep the terminal to sma's own progress bars and messages."""
    import logging

    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="huggingface_hub")
    warnings.formatwarning = _one_line_warning
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """sma's own warnings as one line in the command line's words; others as Python shows them."""
    from sma.cli.flags import for_command_line

    if category.__module__.startswith("sma."):
        return f"sma: warning: {for_command_line(str(message))}\n"
    return _PYTHON_FORMAT(message, category, filename, lineno, line)


# what the place written to says (a full disk, a file-size limit, a read-only folder), not a fault of sma's
UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    parser = build_parser()
    arguments = parser.parse_args(argv)
    run = getattr(arguments, "run", None)
    if run is None:
        parser.print_help()
        return 0
    try:
        return run(arguments) or 0
    except SmaError as error:
        from sma.cli.flags import for_command_line

        print(f"sma: error: {for_command_line(str(error))}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno not in UNWRITABLE:
            raise
        print(f"sma: error: {error.strerror}: {error.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sma: interrupted", file=sys.stderr)
        return 130
