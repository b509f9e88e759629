"""`sma ui`: the web page over the same library calls as the command line."""

from __future__ import annotations

import argparse
import ipaddress
import math
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
    access.add_argument(
        "--auth",
        action="append",
        metavar="USER:PASSWORD",
        help="who may log in (may repeat; shows in `ps`: --auth-file does not)",
    )
    access.add_argument("--auth-file", type=Path, help="a file of USER:PASSWORD lines, one login each")
    access.add_argument(
        "--max-upload-mb", type=float, default=200, help="largest upload request (a video or a picture)"
    )
    access.add_argument(
        "--max-uploads-mb", type=float, default=2000, help="uploads kept of each visitor (their oldest go first)"
    )
    access.add_argument("--max-queue", type=int, default=4, help="jobs that may wait for the running one")
    access.add_argument("--job-minutes", type=float, default=120, help="a job running longer is stopped")
    access.add_argument("--session-hours", type=float, default=12, help="a login lasts this long")
    access.add_argument(
        "--allow-model",
        action="append",
        default=[],
        metavar="MODEL",
        help="a model (Hub id or folder) visitors may choose beside the embedded one and the recipes' (may repeat)",
    )
    parser.set_defaults(run=run)


MIN_PASSWORD = 8
LIMITS = {"max_upload_mb": 2**20, "max_uploads_mb": 2**30, "max_queue": 1000, "job_minutes": 10**6}  # flag: most
LIMITS |= {"session_hours": 10**4}


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
    for flag, most in LIMITS.items():
        value = getattr(arguments, flag)
        if not (0 < value <= most and math.isfinite(value)):
            raise SmaError(f"--{flag.replace('_', '-')} must be above 0 and at most {most}, got {value:g}")
    if not 1 <= arguments.port <= 65535:
        raise SmaError(f"--port must be 1 to 65535, got {arguments.port}")
    if importlib.util.find_spec("gradio") is None:
        raise SmaError("sma ui needs gradio: pip install 'sma[ui]'")
    from sma.ui import Limits, launch

    limits = Limits(
        logins or None,
        arguments.max_upload_mb,
        arguments.max_queue,
        arguments.job_minutes,
        tuple(arguments.allow_model),
        arguments.session_hours,
        arguments.max_uploads_mb,
    )
    launch(arguments.out, arguments.host, arguments.port, arguments.share, limits)
    return 0


def login(pair: str, where: str) -> tuple[str, str]:
    """USER:PASSWORD as gradio's (user, password); the password may hold colons, neither part may be empty, and the
    password is `MIN_PASSWORD` characters at least."""
    user, colon, password = pair.partition(":")
    if not (user and colon and password):
        raise SmaError(f"{where}: a login is USER:PASSWORD, both non-empty")
    if len(password) < MIN_PASSWORD:
        raise SmaError(f"{where}: the password of {user} is shorter than {MIN_PASSWORD} characters")
    return user, password


def read_auth_file(path: Path) -> list[tuple[str, str]]:
    """The logins of an --auth-file: one USER:PASSWORD a line; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text().splitlines()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as error:
        raise SmaError(f"--auth-file {path} cannot be read: {getattr(error, 'strerror', None) or error}") from None
    if mode & 0o077:
        raise SmaError(f"--auth-file {path} is open to other users (mode {mode & 0o777:o}): chmod 600 {path}")
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
