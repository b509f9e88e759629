"""`sma ui`: the web page over the same library calls as the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from sma.cli.flags import DefaultsHelpFormatter


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        "ui",
        help="serve a web page for motion transfer (needs: pip install 'sma[ui]')",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--out", type=Path, default=Path("sma-runs"), help="folder of the runs")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    import importlib.util

    from sma.errors import SmaError

    if importlib.util.find_spec("gradio") is None:
        raise SmaError("sma ui needs gradio: pip install 'sma[ui]'")
    from sma.ui import launch

    launch(arguments.out, arguments.host, arguments.port, arguments.share)
    return 0
