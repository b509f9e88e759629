"""`sma ui` driven as a person would, in headless Chromium: a login, run, results, a bad input, an upload too big,
a cancelled run, a job turned away by a full queue; and its HTTP API, which tells nothing before a login.

Needs the `ui` extra (gradio, playwright) and a Chromium (Debian's `chromium` package; `SMA_CHROMIUM` names
another); the API's test, gradio alone. Screenshots at 1280x800 and in a narrow window go to build/ui-screenshots/.
"""

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the ui extra is not installed: pip install -e '.[ui]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="the ui extra is not installed: pip install -e '.[ui]'")

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "ui-screenshots"
LOGIN = ("ann", "s3:cret-pass")
OTHER = ("bob", "bob-password")  # the login the throttling test locks out
MAX_UPLOAD_MB = 0.1
MAX_UPLOADS_MB = 0.3
MISSING_MODEL = "/nonexistent/no-such-model"  # offered by --allow-model: choosing it is a one-line error
# How long a page may take to answer: while a job trains in the server on two busy cores, a second visitor's page
# took 11-12 s beside one busy core, and past 30 s (its login, its Cancel) in 3 of 4 full runs in session 13, also
# before that session's changes: a slow page under load whose cause is not found yet. The waits assert that it comes.
PATIENCE_MS = 120_000


def chromium() -> str | None:
    for candidate in (os.environ.get("SMA_CHROMIUM"), "/usr/lib/chromium/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`sma ui` on a free port, as a user starts it, with a login, small uploads and one job waiting at most;
    yields (address, output folder)."""
    out, port = tmp_path_factory.mktemp("ui") / "runs", free_port()
    stale = out / ".uploads" / "0" / "stale.mp4"  # an upload of the last server: gone as this one starts
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"0")
    logins = tmp_path_factory.mktemp("ui-login") / "logins"
    logins.write_text(f"# the page's logins\n{':'.join(LOGIN)}\n{':'.join(OTHER)}\n")
    logins.chmod(0o600)
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "sma", "ui", "--port", str(port), "--out", str(out), "--auth-file", str(logins)]
    command += ["--max-upload-mb", str(MAX_UPLOAD_MB), "--max-uploads-mb", str(MAX_UPLOADS_MB), "--max-queue", "1"]
    command += ["--allow-model", MISSING_MODEL]
    log = tmp_path_factory.mktemp("ui-log") / "server.log"
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    address = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if process.poll() is not None:
                pytest.fail(f"sma ui exited: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(address, timeout=1)
                if address in log.read_text():  # printed once the server is up
                    break
            except OSError:
                pass
            time.sleep(0.25)
        assert address in log.read_text()  # the address is printed, and --share, not gradio's launch(share=True)
        assert "--share also serves it" in log.read_text() and "launch()" not in log.read_text()
        yield address, out, logins
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()


def test_without_a_login_the_page_and_its_api_tell_nothing(server, tmp_path):
    """Before a login: the page is gradio's login form (none of its fields), and its API, files and uploads answer
    401; after it, files outside the run folder stay out of reach (403), its own are served."""
    import httpx

    address, out, _ = server
    example = out / ".examples" / "zigzag.mp4"
    outside = tmp_path / "secret.txt"
    outside.write_text("not for visitors")
    with httpx.Client(base_url=address) as client:
        for path in ("/", "/?all_endpoints=true"):  # gradio's login page, the page's API left out
            assert "Reference prompt" not in client.get(path).text and "zigzag" not in client.get(path).text
        for path in ("/config", "/gradio_api/info", f"/gradio_api/file={example}", f"/gradio_api/file={outside}"):
            assert client.get(path).status_code == 401, path
        for path in ("/gradio_api/heartbeat/x", "/gradio_api/startup-events", "/gradio_api/upload_progress"):
            assert client.get(path).status_code == 401, path  # gradio answers these to anyone
        assert (
            client.post("/gradio_api/cancel", json={"session_hash": "x", "fn_index": 0, "event_id": "e"}).status_code
            == 401
        )
        call = client.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"})
        assert call.status_code == 401
        assert client.post("/gradio_api/upload", files={"files": ("a.mp4", b"0")}).status_code == 401
        assert client.post("/login", data={"username": LOGIN[0], "password": "wrong"}).status_code == 400
        assert client.get("/config").status_code == 401
        assert client.post("/login", data=dict(zip(("username", "password"), LOGIN, strict=True))).is_success
        assert "Reference prompt" in client.get("/config").text
        assert client.get(f"/gradio_api/file={example}").is_success
        for path in (outside, ROOT / "README.md", Path("/etc/passwd")):
            assert client.get(f"/gradio_api/file={path}").status_code == 403, path
        uploaded = client.post("/gradio_api/upload", files={"files": ("a.mp4", b"0")}).json()[0]
        assert Path(uploaded).is_relative_to(out)  # uploads stay in the run folder too
        big = client.post("/gradio_api/upload", files={"files": ("a.mp4", b"0" * int(MAX_UPLOAD_MB * 2**20 + 1))})
        assert big.status_code == 413


@contextlib.contextmanager
def logged_in(address: str, login: tuple[str, str] = LOGIN):
    """An HTTP client logged in."""
    import httpx

    with httpx.Client(base_url=address, timeout=60) as client:
        assert client.post("/login", data=dict(zip(("username", "password"), login, strict=True))).is_success
        yield client


def call(client, function: str, data: list) -> list:
    """The page's event `function` called as gradio's API lets any visitor (its queue), with `data`; its outputs."""
    events = client.get("/config").json()["dependencies"]
    event = next(event for event in events if event["api_name"] == function)
    join = {"data": data, "fn_index": event["id"], "session_hash": "api", "trigger_id": event["targets"][0][0]}
    assert client.post("/gradio_api/queue/join", json=join).is_success
    with client.stream("GET", "/gradio_api/queue/data?session_hash=api") as stream:
        for line in stream.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                return message["output"]["data"]
    raise AssertionError(f"{function} never completed")


def test_a_request_never_reads_outside_the_run_folder(server, tmp_path):
    """Finding 1 of issue 42: the results of any folder holding a config.yaml (a path, `../..`) were zipped and
    served, and the zip followed a run folder's symlink to the login file; now only jobs under --out are shown,
    and a zip leaves symlinks out."""
    import zipfile

    address, out, logins = server
    elsewhere = tmp_path / "elsewhere" / "sma"
    elsewhere.mkdir(parents=True)
    (elsewhere / "config.yaml").write_text("method: vmc\n")
    linked = out / "linked" / "sma"
    linked.mkdir(parents=True)
    (linked / "config.yaml").write_text("method: vmc\n")
    (linked / "reference.mp4").symlink_to(logins)
    (out / "outward").symlink_to(elsewhere.parent)
    with logged_in(address) as client:
        for name in (str(elsewhere.parent), "../" * 8 + str(elsewhere.parent)[1:], "..", "outward", ".downloads"):
            shown = call(client, "show", [name])
            assert shown[0].startswith("**Error:**") and "\n" not in shown[0] and shown[-1] is None, (name, shown)
        assert not list((out / ".downloads").glob("elsewhere*"))
        shown = call(client, "show", ["linked"])
        assert shown[0].startswith("Showing **linked**"), shown
        zipped = client.get(f"/gradio_api/file={out / '.downloads' / 'linked.zip'}")
        assert zipped.is_success
        archive = zipfile.ZipFile(io.BytesIO(zipped.content))
        assert "linked/sma/config.yaml" in archive.namelist() and "linked/sma/reference.mp4" not in archive.namelist()
        assert LOGIN[1].encode() not in zipped.content


def test_uploads_are_never_served_as_pages(server):
    """Finding 2: an uploaded .html came back as text/html, an .svg as image/svg+xml (script in the page's origin);
    now every file is sandboxed and only videos and pictures the page shows are served inline. Finding 6: one
    request of many files under the upload limit each, no quota, uploads never deleted; now the limit is the
    request's, each visitor's oldest uploads go past --max-uploads-mb, and the last server's as one starts.
    Finding 8: files anyone could read."""
    address, out, _ = server
    page = b"<script>fetch('/config')</script>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    with logged_in(address) as client:
        for name, content in (("a.html", page), ("a.svg", svg), ("a.htm", page), ("a.xml", svg)):
            path = client.post("/gradio_api/upload", files={"files": (name, content, "text/html")}).json()[0]
            served = client.get(f"/gradio_api/file={path}")
            assert served.headers["content-type"] == "application/octet-stream", name
            assert served.headers["content-disposition"] == "attachment", name
            assert served.headers["content-security-policy"].startswith("sandbox"), name
            assert served.headers["x-content-type-options"] == "nosniff", name
        video = client.get(f"/gradio_api/file={out / '.examples' / 'zigzag.mp4'}")
        assert video.headers["content-type"] == "video/mp4" and video.headers["content-disposition"] == "inline"
        part = int(MAX_UPLOAD_MB * 2**20 * 0.6)
        many = [("files", (f"{index}.mp4", b"0" * part)) for index in range(2)]  # each under the limit, not both
        assert client.post("/gradio_api/upload", files=many).status_code == 413
        with logged_in(address, OTHER) as other:  # another visitor's upload, which the first one's never evict
            kept = Path(other.post("/gradio_api/upload", files={"files": ("b.mp4", b"0" * part)}).json()[0])
        paths = [
            client.post("/gradio_api/upload", files={"files": (f"{n}.mp4", b"0" * part)}).json()[0] for n in range(8)
        ]
        assert [Path(path).is_file() for path in paths] == [False] * 4 + [True] * 4  # 4 x 0.06 MB within 0.3 MB
        assert kept.is_file() and not (out / ".uploads" / "0" / "stale.mp4").exists()
    made = [*(out / ".uploads").rglob("*"), *(out / ".examples").rglob("*")]  # finding 8: world-readable files
    assert made and all(path.stat().st_mode & 0o077 == 0 for path in made), [oct(p.stat().st_mode) for p in made]


def test_another_origin_reads_nothing_and_logins_are_throttled(server):
    """Findings 3 and 8: under a non-loopback host name gradio echoed any Origin with credentials, the cookie was
    SameSite=None; 30 wrong passwords in a second, then the right one, were accepted."""
    import httpx

    address, _, _ = server
    with logged_in(address) as client:
        for host in (None, "sma.example.org"):
            headers = {"origin": "https://evil.example"} | ({"host": host} if host else {})
            answer = client.get("/config", headers=headers)
            assert answer.status_code == 403 and "Reference prompt" not in answer.text  # gradio's CORS headers stay
        assert client.get("/config", headers={"origin": address}).is_success  # the page's own origin
    with httpx.Client(base_url=address) as client:
        login = client.post("/login", data=dict(zip(("username", "password"), LOGIN, strict=True)))
        assert all("samesite=none" not in cookie.lower() for cookie in login.headers.get_list("set-cookie"))
        assert any("samesite=strict" in cookie.lower() for cookie in login.headers.get_list("set-cookie"))
        wrong = [client.post("/login", data={"username": OTHER[0], "password": "guess"}).status_code for _ in range(8)]
        assert wrong == [400] * 5 + [429] * 3
        right = client.post("/login", data=dict(zip(("username", "password"), OTHER, strict=True)))
        assert right.status_code == 429 and "too many wrong passwords" in right.text
        assert client.post("/login", data=dict(zip(("username", "password"), LOGIN, strict=True))).is_success


UPLOADED_SCRIPTS = {  # uploads that would retitle the page that frames them, were they run in its origin
    "page.html": "<script>parent.document.title = 'run'</script>",
    "picture.svg": "<svg xmlns='http://www.w3.org/2000/svg' onload=\"parent.document.title = 'run'\"></svg>",
}
FRAME = """url => new Promise(done => {
    const frame = document.createElement('iframe');
    frame.onload = done;
    frame.src = url;
    document.body.appendChild(frame);
    setTimeout(done, 2000);
})"""


def visit(browser, address: str):
    """A new visitor (a browser context of its own) who logs in."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(PATIENCE_MS)
    page.goto(address)
    page.get_by_label("username").fill(LOGIN[0])
    page.get_by_label("password").fill(LOGIN[1])
    page.get_by_role("button", name="Login").click()
    page.locator("#run").wait_for(timeout=PATIENCE_MS)
    return page


def fill(page, label: str, value) -> None:
    page.get_by_label(label, exact=True).fill(str(value))


def choose(page, label: str, option: str) -> None:
    """An option of a Gradio dropdown, as a person picks it."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def screenshot(page, name: str, full_page: bool = False) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def status(page) -> str:
    return page.locator("#status").inner_text()


def table_rows(page, table: str) -> int:
    """Rows of a Gradio table, header left out (its rows are drawn lazily; the grid counts them all)."""
    return int(page.locator(f"{table} [role=grid]").get_attribute("aria-rowcount")) - 1


def wait_status(page, prefixes: tuple[str, ...]) -> str:
    deadline = time.monotonic() + PATIENCE_MS / 1000
    while time.monotonic() < deadline:
        text = status(page)
        if text.startswith(prefixes):
            return text
        page.wait_for_timeout(250)
    raise AssertionError(f"status never began with {prefixes}: {status(page)!r}")


def test_a_person_runs_a_transfer_sees_an_error_and_cancels_a_run_while_another_waits(server, tmp_path):
    from sma.ui import SCORE_COLUMNS
    from sma.video import MovingObject, read_video, synthetic_video, write_video

    if chromium() is None:
        pytest.skip("no Chromium: apt-get install chromium (or set SMA_CHROMIUM to a Chromium binary)")
    address, out, _ = server
    clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=8, height=64, width=64)
    video = write_video(tmp_path / "circle.mp4", clip.frames)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(PATIENCE_MS)
        page.goto(address)
        page.get_by_label("username").fill(LOGIN[0])
        page.get_by_label("password").fill("wrong")
        page.get_by_role("button", name="Login").click()
        page.get_by_text("Incorrect Credentials").wait_for(timeout=PATIENCE_MS)
        assert page.locator("#run").count() == 0
        page.close()
        page = visit(browser, address)
        for name, content in UPLOADED_SCRIPTS.items():  # finding 2 of issue 42: uploads never run in the page's origin
            upload = {"files": {"name": name, "mimeType": "text/html", "buffer": content.encode()}}
            path = page.request.post(f"{address}/gradio_api/upload", multipart=upload).json()[0]
            page.evaluate(FRAME, f"{address}/gradio_api/file={path}")
            assert page.evaluate("document.title") == "sma: motion transfer", name
        big = tmp_path / "big.mp4"
        big.write_bytes(os.urandom(int(MAX_UPLOAD_MB * 2**20) + 1))
        page.locator("#reference input[type=file]").set_input_files(str(big))
        refused = page.locator(".toast-body").get_by_text("exceed the maximum allowed size")
        refused.wait_for(timeout=PATIENCE_MS)
        assert "big.mp4" in refused.inner_text() and "\n" not in refused.inner_text().strip()
        assert not list(out.glob(".uploads/*/big.mp4"))
        page.locator("#reference input[type=file]").set_input_files(str(video))
        fill(page, "Reference prompt", "a red circle moving right")
        fill(page, "Target prompts (one per line)", "a blue square on a plain white background")
        assert page.get_by_label("Untuned baseline", exact=True).is_checked()  # on by default
        page.locator("#run").click()  # Settings never opened (issue 46.1: its Run name came as None, every panel Error)
        page.locator("#progress").get_by_text("training").wait_for(timeout=PATIENCE_MS)
        page.locator("#cancel").click()
        first = wait_status(page, ("Cancelled", "Error", "Done"))
        assert first.startswith("Cancelled: stopped at step"), first
        page.locator("#settings").get_by_text("Settings").click()
        fill(page, "Run name", "")  # a new job, not the cancelled one resumed
        page.get_by_label("Resume (after a Cancel)", exact=True).uncheck()
        for label, value in (("Training steps", 4), ("Sampling steps", 3), ("Inversion steps", 3)):
            fill(page, label, value)

        page.locator("#run").click()
        done = wait_status(page, ("Done", "Error", "Cancelled"))
        screenshot(page, "done-1280x800.png")
        screenshot(page, "done-1280-full.png", full_page=True)
        assert done.startswith("Done"), done
        assert page.locator("#comparison video").get_attribute("src")
        assert table_rows(page, "#metrics") == 3
        table = page.locator("#metrics").inner_text()
        assert "untuned" in table and "with SMA" in table and "without SMA" in table
        assert "untuned · sampling" in page.locator("#progress").inner_text()
        assert page.locator("#videos").get_by_text("untuned: a blue square").count()
        job = out / done.split()[1]
        metrics = json.loads((job / "sma" / "metrics.json").read_text())
        for kind in ("outputs", "untuned"):
            scores = [metrics[kind][0][key] for key in SCORE_COLUMNS]  # None where nothing moving was tracked
            for score in filter(None, scores):
                assert f"{score:.3f}".rstrip("0") in table  # the page shows the run folder's numbers
        assert not (job / "nosma" / "untuned").exists()  # sampled once, for both variants
        # the comparison: reference, untuned, with SMA, without SMA, 64 px each with 4 px between
        assert read_video(job / "comparison.mp4").shape[2] == 4 * 64 + 3 * 4
        downloads = page.locator("#downloads").inner_text()
        assert "adapter" in downloads and ".zip" in downloads, downloads
        assert "sma-lora-diffusers" in downloads, downloads  # `sma export` of the VMC adapter

        choose(page, "Model", MISSING_MODEL)  # a model is chosen from a list (--allow-model adds this one), not typed
        page.locator("#run").click()
        error = wait_status(page, ("Error",))
        assert "no-such-model" in error and "\n" not in error.strip()
        assert table_rows(page, "#metrics") == 3  # the earlier results stay
        screenshot(page, "error-1280x800.png")

        choose(page, "Model", "the embedded model")
        fill(page, "Training steps", 2000)
        page.locator("#run").click()
        page.locator("#progress").get_by_text("training").wait_for(timeout=PATIENCE_MS)
        visitor = visit(browser, address)  # a second visitor, while it trains
        visitor.locator("#example").get_by_text("zigzag").click()
        visitor.locator("#reference video").wait_for(timeout=PATIENCE_MS)
        visitor.locator("#run").click()
        visitor.locator("#status").get_by_text("Queued: another job").wait_for(timeout=PATIENCE_MS)
        third = visit(browser, address)  # one more: the queue (--max-queue 1) is full
        third.locator("#example").get_by_text("zigzag").click()
        third.locator("#reference video").wait_for(timeout=PATIENCE_MS)
        third.locator("#run").click()
        third.locator("#status").get_by_text("Refused: the queue is full (1 waiting").wait_for(timeout=PATIENCE_MS)
        assert "\n" not in status(third).strip()
        third.close()
        visitor.locator("#cancel").click()
        page.locator("#cancel").click()
        cancelled = wait_status(page, ("Cancelled", "Error", "Done"))
        visitor.locator("#status").get_by_text("Cancelled before it started").wait_for(timeout=PATIENCE_MS)
        assert cancelled.startswith("Cancelled: stopped at step"), cancelled
        assert "continue with 'Resume'" in cancelled
        name = page.get_by_label("Run name", exact=True).input_value()
        assert list((out / name / "sma" / "checkpoints").glob("step-*")), "the cancelled run keeps its checkpoint"
        assert table_rows(page, "#metrics") == 3
        screenshot(page, "cancelled-1280x800.png")

        page.locator("#previous").get_by_text("Previous runs").click()
        runs = page.locator("#runs").inner_text()
        assert job.name in runs and name in runs and "stopped at step-" in runs

        page.set_viewport_size({"width": 420, "height": 900})
        screenshot(page, "narrow-420.png", full_page=True)
        browser.close()
