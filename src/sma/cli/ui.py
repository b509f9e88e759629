"""`sma ui`: the web page over the same library calls as the command line."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from sma.cli.flags import DefaultsHelpFormatter
from sma.errors import SmaError


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
    access = parser.add_argument_group("access and limits (beyond this machine, --auth or --auth-file is required)")
    access.add_argument("--auth", action="append", metavar="USER:PASSWORD", help="who may log in (may repeat)")
    access.add_argument("--auth-file", type=Path, help="a file of USER:PASSWORD lines, one login each")
    access.add_argument("--max-upload-mb", type=float, default=200, help="largest upload (a video or a picture)")
    access.add_argument("--max-queue", type=int, default=4, help="jobs that may wait for the running one")
    access.add_argument("--job-minutes", type=float, default=120, help="a job running longer is stopped")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    import importlib.util

    logins = [login(pair, "--auth") for pair in arguments.auth or []]
    if arguments.auth_file:
        logins += read_auth_file(arguments.auth_file)
    if not logins:
        if arguments.share:
            raise SmaError("--share puts the page on a public link: give --auth USER:PASSWORD or --auth-file")
        if not is_loopback(arguments.host):
            raise SmaError(f"--host {arguments.host} serves the page beyond this machine: give --auth or --auth-file")
    for flag in ("max_upload_mb", "max_queue", "job_minutes"):
        if not getattr(arguments, flag) > 0:
            raise SmaError(f"--{flag.replace('_', '-')} must be positive, got {getattr(arguments, flag)}")
    if importlib.util.find_spec("gradio") is None:
        raise SmaError("sma ui needs gradio: pip install 'sma[ui]'")
    from sma.ui import Limits, launch

    limits = Limits(logins or None, arguments.max_upload_mb, arguments.max_queue, arguments.job_minutes)
    launch(arguments.out, arguments.host, arguments.port, arguments.share, limits)
    return 0


def login(pair: str, where: str) -> tuple[str, str]:
    """USER:PASSWORD as gradio's (user, password); the password may hold colons, neither part may be empty."""
    user, colon, password = pair.partition(":")
    if not (user and colon and password):
        raise SmaError(f"{where}: a login is USER:PASSWORD, both non-empty")
    return user, password


def read_auth_file(path: Path) -> list[tuple[str, str]]:
    """The logins of an --auth-file: one USER:PASSWORD a line; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SmaError(f"--auth-file {path} cannot be read: {getattr(error, 'strerror', None) or error}") from None
    logins = [
        login(line.strip(), f"--auth-file {path} line {number}")
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not logins:
        raise SmaError(f"--auth-file {path} holds no USER:PASSWORD line")
    return logins


def is_loopback(host: str) -> bool:
    """Whether `host` listens to this machine alone (an unknown name counts as reaching beyond it)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
