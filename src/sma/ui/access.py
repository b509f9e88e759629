"""Who may reach the page and what it serves back: the page's limits, the one resolver of every file a request
names, and `Guard`, an ASGI layer in front of gradio's routes for what gradio leaves open (routes that answer
without a login, cross-origin reads, uploads served as pages of the page's origin, unthrottled logins, sessions
that never end, many files in one upload)."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sma.errors import SmaError

# what gradio's login page itself loads; every other route needs a login
PUBLIC = ("/", "/login", "/login/", "/favicon.ico", "/theme.css", "/gradio_api/theme.css", "/manifest.json")
PUBLIC_TREES = ("/assets/", "/static/", "/svelte/")
FILE_ROUTES = ("/gradio_api/file=", "/file=", "/gradio_api/file/")
INLINE_TYPES = {b"video/mp4", b"video/webm", b"image/png", b"image/jpeg", b"image/gif", b"image/webp"}
FAILED_LOGINS = 5  # wrong passwords for one user from one address ...
FAILED_WINDOW_S = 60.0  # ... within this many seconds: its logins are refused until the oldest leaves the window


@dataclass
class Limits:
    """What the page allows its visitors: who may log in ((user, password) pairs; None: anyone), the size of one
    upload request, the uploads kept of each visitor (their oldest go first), how many jobs may wait for the running
    one, how long one job may run, the models a visitor may choose beside the embedded one and the recipes' (Hub ids
    or folders), and how long a login lasts."""

    auth: list[tuple[str, str]] | None = None
    max_upload_mb: float = 200
    max_queue: int = 4
    job_minutes: float = 120
    models: tuple[str, ...] = ()
    session_hours: float = 12
    max_uploads_mb: float = 2000


def inside(root: Path, path: str | Path, what: str) -> Path:
    """`path` (absolute, or relative to `root`) with every symlink resolved; one line (SmaError) unless it lies
    under `root` (resolved): the one check of every file or folder a request names."""
    resolved = (root / path).resolve()
    if resolved == root.resolve() or not resolved.is_relative_to(root.resolve()):
        raise SmaError(f"{what} {Path(path).name or path} is not one of this page's files")
    return resolved


class Guard:
    """ASGI middleware inside gradio's: a login for every route but the login page's own; no answer to another
    origin; at most `FAILED_LOGINS` wrong passwords a minute for one user from one address; logins that end after
    `limits.session_hours`; upload requests no larger than `limits.max_upload_mb` in all, and each visitor's uploads
    within `limits.max_uploads_mb` (their oldest deleted); and files served as
    downloads in a sandbox unless they are a video or a picture the page shows (an uploaded .html or .svg never runs
    in the page's origin)."""

    def __init__(self, app, limits: Limits, origins: set[str]) -> None:
        self.app, self.limits = app, limits
        self.uploaded: dict[str, list[Path]] = defaultdict(list)  # each visitor's uploads, oldest first
        self.origins = origins  # the page's own beside the Host a request names: its public link's (--share)
        self.failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)  # by (address, user)
        self.issued: dict[str, float] = {}  # login token -> when it was issued

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        path, gradio = scope["path"], scope["app"]
        if "origin" in headers and urlsplit(headers["origin"]).netloc not in {headers.get("host"), *self.origins}:
            return await refuse(send, 403, "requests from another origin are refused")
        if path in ("/login", "/login/") and self.limits.auth:
            return await self.login(scope, receive, send, gradio)
        starting = path == "/gradio_api/startup-events" and not gradio.startup_events_triggered  # launch() calls it
        if self.limits.auth and not (public(path) or starting or self.logged_in(headers, gradio)):
            return await refuse(send, 401, "log in first")
        if path in ("/gradio_api/upload", "/gradio_api/upload/"):
            size = headers.get("content-length")
            if size is None or not size.isdigit():
                return await refuse(send, 411, "an upload must say its length")
            if int(size) > self.limits.max_upload_mb * 2**20:
                return await refuse(send, 413, f"uploads are {self.limits.max_upload_mb:g} MB at most in all")
            visitor = self.visitor(scope, headers, gradio)
            self.uploaded[visitor] = make_room(self.uploaded[visitor], self.limits.max_uploads_mb * 2**20 - int(size))
            return await self.app(scope, receive, noting(send, self.uploaded[visitor]))
        if path.startswith(FILE_ROUTES):
            return await self.app(scope, receive, as_download(send))
        return await self.app(scope, receive, send)

    def visitor(self, scope, headers: dict[str, str], gradio) -> str:
        """Who uploads: the login's user, or the address where the page needs no login."""
        users = [gradio.tokens[token] for token in tokens(headers, gradio) if token in gradio.tokens]
        return f"user {users[0]}" if users else f"address {(scope.get('client') or ('?',))[0]}"

    def logged_in(self, headers: dict[str, str], gradio) -> bool:
        """Whether the request carries a login token that gradio knows and that has not expired (then forgotten)."""
        for token in tokens(headers, gradio):
            issued = self.issued.get(token)
            if issued is not None and time.monotonic() - issued > self.limits.session_hours * 3600:
                gradio.tokens.pop(token, None)
                del self.issued[token]
            elif token in gradio.tokens and issued is not None:
                return True
        return False

    async def login(self, scope, receive, send, gradio) -> None:
        """gradio's login, refused (429) after too many wrong passwords for one user from one address; a success
        notes its token's time and makes its cookies same-site."""
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
            if len(body) > 2**16:
                return await refuse(send, 413, "a login is a user and a password")
        user = parse_qs(body.decode("latin-1")).get("username", [""])[0].strip()
        key = ((scope.get("client") or ("?",))[0], user)
        failures, now = self.failures[key], time.monotonic()
        while failures and now - failures[0] > FAILED_WINDOW_S:
            failures.popleft()
        if len(failures) >= FAILED_LOGINS:
            wait = FAILED_WINDOW_S - (now - failures[0])
            return await refuse(send, 429, f"too many wrong passwords: try again in {wait:.0f} s")

        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def replayed() -> dict:
            return pending.pop() if pending else await receive()

        known = set(gradio.tokens)

        async def watched(message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] >= 400:
                    failures.append(time.monotonic())
                message["headers"] = [
                    (key, re.sub(rb"(?i)samesite=none", b"SameSite=strict", value) if key == b"set-cookie" else value)
                    for key, value in message["headers"]
                ]
            await send(message)

        await self.app(scope, replayed, watched)
        for token in set(gradio.tokens) - known:
            self.issued[token] = time.monotonic()
        if not failures:  # what an address tried for a user is kept only while it counts
            self.failures.pop(key, None)


def tokens(headers: dict[str, str], gradio) -> list[str]:
    """The login tokens of a request's cookies (gradio sets two: secure and not)."""
    cookies = dict(part.strip().partition("=")[::2] for part in headers.get("cookie", "").split(";"))
    names = (f"access-token-{gradio.cookie_id}", f"access-token-unsecure-{gradio.cookie_id}")
    return [cookies[name] for name in names if cookies.get(name)]


def make_room(files: list[Path], room: float) -> list[Path]:
    """Deletes the oldest of a visitor's uploads until the rest take at most `room` bytes; the rest."""
    files = [path for path in files if path.is_file()]
    kept = sum(path.stat().st_size for path in files)
    while files and kept > room:
        kept -= files[0].stat().st_size
        files.pop(0).unlink()
    return files


def noting(send, uploads: list[Path]):
    """`send` that adds the files a successful upload's answer names (gradio's JSON list of paths) to `uploads`."""
    answer: dict = {"body": b""}

    async def sending(message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif answer["status"] == 200:
            answer["body"] += message.get("body", b"")
            if not message.get("more_body"):
                uploads.extend(Path(path) for path in json.loads(answer["body"]))
        await send(message)

    return sending


def public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_TREES)


def as_download(send):
    """`send` with a file's answer made harmless: a type the page does not show inline becomes an attachment of no
    type, and every file is sandboxed (no script, no origin) and never sniffed."""

    async def sending(message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message["headers"])
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            kept = [
                (key, value)
                for key, value in message["headers"]
                if key.lower() not in (b"content-type", b"content-disposition")
            ]
            if kind in INLINE_TYPES:
                kept += [(b"content-type", kind), (b"content-disposition", b"inline")]
            else:
                kept += [(b"content-type", b"application/octet-stream"), (b"content-disposition", b"attachment")]
            kept += [
                (b"x-content-type-options", b"nosniff"),
                (b"content-security-policy", b"sandbox; default-src 'none'"),
            ]
            message["headers"] = kept
        await send(message)

    return sending


async def refuse(send, status: int, message: str) -> None:
    body = message.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
