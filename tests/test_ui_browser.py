"""`sma ui` driven as a person would, in headless Chromium: a login, run, results, a bad input, an upload too big,
a cancelled run, a job turned away by a full queue; and its HTTP API, which tells nothing before a login.

Needs the `ui` extra (gradio, playwright) and a Chromium (Debian's `chromium` package; `SMA_CHROMIUM` names
another); the API's test, gradio alone. Screenshots at 1280x800 and in a narrow window go to build/ui-screenshots/.
"""

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
LOGIN = ("ann", "s3:cret")
MAX_UPLOAD_MB = 0.1


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
    logins = tmp_path_factory.mktemp("ui-login") / "logins"
    logins.write_text(f"# the page's logins\n{':'.join(LOGIN)}\n")
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "sma", "ui", "--port", str(port), "--out", str(out), "--auth-file", str(logins)]
    command += ["--max-upload-mb", str(MAX_UPLOAD_MB), "--max-queue", "1"]
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
        yield address, out
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()


def test_without_a_login_the_page_and_its_api_tell_nothing(server, tmp_path):
    """Before a login: the page is gradio's login form (none of its fields), and its API, files and uploads answer
    401; after it, files outside the run folder stay out of reach (403), its own are served."""
    import httpx

    address, out = server
    example = out / ".examples" / "zigzag.mp4"
    outside = tmp_path / "secret.txt"
    outside.write_text("not for visitors")
    with httpx.Client(base_url=address) as client:
        for path in ("/", "/?all_endpoints=true"):  # gradio's login page, the page's API left out
            assert "Reference prompt" not in client.get(path).text and "zigzag" not in client.get(path).text
        for path in ("/config", "/gradio_api/info", f"/gradio_api/file={example}", f"/gradio_api/file={outside}"):
            assert client.get(path).status_code == 401, path
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


def visit(browser, address: str):
    """A new visitor (a browser context of its own) who logs in."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(address)
    page.get_by_label("username").fill(LOGIN[0])
    page.get_by_label("password").fill(LOGIN[1])
    page.get_by_role("button", name="Login").click()
    page.locator("#run").wait_for(timeout=30_000)
    return page


def fill(page, label: str, value) -> None:
    page.get_by_label(label, exact=True).fill(str(value))


def screenshot(page, name: str, full_page: bool = False) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def status(page) -> str:
    return page.locator("#status").inner_text()


def table_rows(page, table: str) -> int:
    """Rows of a Gradio table, header left out (its rows are drawn lazily; the grid counts them all)."""
    return int(page.locator(f"{table} [role=grid]").get_attribute("aria-rowcount")) - 1


def wait_status(page, prefixes: tuple[str, ...], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
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
    address, out = server
    clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=8, height=64, width=64)
    video = write_video(tmp_path / "circle.mp4", clip.frames)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(address)
        page.get_by_label("username").fill(LOGIN[0])
        page.get_by_label("password").fill("wrong")
        page.get_by_role("button", name="Login").click()
        page.get_by_text("Incorrect Credentials").wait_for(timeout=15_000)
        assert page.locator("#run").count() == 0
        page.close()
        page = visit(browser, address)
        big = tmp_path / "big.mp4"
        big.write_bytes(os.urandom(int(MAX_UPLOAD_MB * 2**20) + 1))
        page.locator("#reference input[type=file]").set_input_files(str(big))
        refused = page.locator(".toast-body").get_by_text("exceed the maximum allowed size")
        refused.wait_for(timeout=15_000)
        assert "big.mp4" in refused.inner_text() and "\n" not in refused.inner_text().strip()
        assert not list(out.glob(".uploads/*/big.mp4"))
        page.locator("#reference input[type=file]").set_input_files(str(video))
        fill(page, "Reference prompt", "a red circle moving right")
        fill(page, "Target prompts (one per line)", "a blue square on a plain white background")
        assert page.get_by_label("Untuned baseline", exact=True).is_checked()  # on by default
        page.locator("#settings").get_by_text("Settings").click()
        for label, value in (("Training steps", 4), ("Sampling steps", 3), ("Inversion steps", 3)):
            fill(page, label, value)

        page.locator("#run").click()
        done = wait_status(page, ("Done", "Error", "Cancelled"), 60)
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

        fill(page, "Model", str(tmp_path / "no-such-model"))
        page.locator("#run").click()
        error = wait_status(page, ("Error",), 30)
        assert "no-such-model" in error and "\n" not in error.strip()
        assert table_rows(page, "#metrics") == 3  # the earlier results stay
        screenshot(page, "error-1280x800.png")

        fill(page, "Model", "")
        fill(page, "Training steps", 2000)
        page.locator("#run").click()
        page.locator("#progress").get_by_text("training").wait_for(timeout=30_000)
        visitor = visit(browser, address)  # a second visitor, while it trains
        visitor.locator("#run").click()
        visitor.locator("#status").get_by_text("Queued: another job").wait_for(timeout=15_000)
        third = visit(browser, address)  # one more: the queue (--max-queue 1) is full
        third.locator("#run").click()
        third.locator("#status").get_by_text("Refused: the queue is full (1 waiting").wait_for(timeout=15_000)
        assert "\n" not in status(third).strip()
        third.close()
        visitor.locator("#cancel").click()
        page.locator("#cancel").click()
        cancelled = wait_status(page, ("Cancelled", "Error", "Done"), 30)
        visitor.locator("#status").get_by_text("Cancelled before it started").wait_for(timeout=30_000)
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
