"""The page's fields -> the runs' configurations, for methods that train and methods that train nothing."""

import re
from types import SimpleNamespace

import pytest

pytest.importorskip("gradio", reason="the ui extra is not installed: pip install -e '.[ui]'")

from ui_forms import form as page_form

from sma.cli import main
from sma.errors import SmaError
from sma.recipes import load_config
from sma.ui import FIELDS, TOY_WORLD, App, Limits, make_job

LOGIN = "ann:s3:cret-pass"


def form(method: str, sma: bool, recipe: str = TOY_WORLD) -> dict:
    return page_form(recipe, method, sma)


@pytest.mark.parametrize("recipe", [TOY_WORLD, "flowmotion-zeroscope"])
def test_the_sma_switch_of_flowmotion_adds_sma_beside_the_official_loss(recipe, tmp_path):
    job = make_job(form("flowmotion", True, recipe), "clip.mp4", tmp_path)
    assert list(job.configs) == ["sma", "nosma"]
    assert job.configs["sma"].options.motion_loss == "both" and job.configs["sma"].sma.enabled
    assert job.configs["nosma"].options.motion_loss == "official" and not job.configs["nosma"].generate.untuned
    assert job.configs["sma"].train.steps == 400  # untouched: FlowMotion trains nothing


@pytest.mark.parametrize("method", ["vmc", "dmt"])
def test_the_page_runs_trained_and_zero_shot_methods(method, tmp_path):
    configs = make_job(form(method, False), "clip.mp4", tmp_path).configs
    assert list(configs) == ["nosma"] and configs["nosma"].train.steps == (20 if method == "vmc" else 400)


def test_an_uploaded_image_starts_every_target(tmp_path):
    page = form("flowmotion", True, "flowmotion-wan2.2-ti2v-5b") | {"image": "/uploads/cat.png"}
    configs = make_job(page, "clip.mp4", tmp_path).configs
    assert {config.image for config in configs.values()} == {"/uploads/cat.png"}
    assert (
        make_job(form("flowmotion", True, "flowmotion-wan2.2-ti2v-5b"), "clip.mp4", tmp_path).configs["sma"].image == ""
    )


def test_the_page_has_every_field_and_offers_the_demos_references(tmp_path):
    from sma.embedded.scenes import DEMO_SCENES, REFERENCE_MOTIONS
    from sma.ui import FIELDS, build

    _, app = build(tmp_path)
    assert sorted(app.names.values()) == sorted([*FIELDS, "reference"])  # every field reaches the run handler
    examples = app.examples()
    assert list(examples) == list(REFERENCE_MOTIONS) and DEMO_SCENES["simple"]["objects"] is REFERENCE_MOTIONS["zigzag"]
    path, prompt, target = examples["zigzag"]
    assert (tmp_path / ".examples" / "zigzag.mp4").is_file() and path.endswith("zigzag.mp4")
    assert "zigzag" in prompt and target == "a blue square on a plain white background"


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "..", "C:\\Windows", "x\x00y", "~root"])
@pytest.mark.parametrize("resume", [False, True])
def test_a_run_name_never_leaves_the_run_folder(name, resume, tmp_path):
    out = tmp_path / "runs"
    folder = make_job(form("vmc", True) | {"name": name, "resume": resume}, "clip.mp4", out).folder
    assert folder.parent == out and folder.name and folder.name[0] not in "./~", folder


@pytest.mark.parametrize(
    ("reference", "image", "message"),
    [
        ("notes.txt", None, "the reference must be a mp4 .* not notes.txt"),
        ("clip.MP4", "clip.mp4", "the start image must be a png .* not clip.mp4"),
    ],
)
def test_an_upload_of_the_wrong_kind_is_one_line(reference, image, message, tmp_path):
    with pytest.raises(SmaError, match=message):
        make_job(form("vmc", True) | {"image": image}, reference, tmp_path)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0 serves the page beyond this machine: give --auth or --auth-file"),
        (["--host", "example.org"], "--host example.org serves the page beyond"),
        (["--share"], "--share puts the page on a public link: give --auth USER:PASSWORD or --auth-file"),
        (["--auth", "ann"], "--auth: a login is USER:PASSWORD, both non-empty"),
        (["--auth", ":secret"], "--auth: a login is USER:PASSWORD"),
        (["--auth", "ann:x"], "--auth: the password of ann is shorter than 8 characters"),
        (["--auth-file", "{tmp}/logins"], "--auth-file .*/logins line 3: a login is USER:PASSWORD"),
        (["--auth-file", "{tmp}/none"], "--auth-file .*/none cannot be read: No such file or directory"),
        (["--auth-file", "{tmp}/open"], "--auth-file .*/open is open to other users \\(mode 644\\): chmod 600 "),
        (["--auth", LOGIN, "--max-queue", "0"], "--max-queue must be above 0 and at most 1000, got 0"),
        (["--auth", LOGIN, "--job-minutes", "-1"], "--job-minutes must be above 0 and at most 1000000, got -1"),
        (["--auth", LOGIN, "--max-upload-mb", "inf"], "--max-upload-mb must be above 0 and at most 1048576, got inf"),
        (["--auth", LOGIN, "--max-upload-mb", "1e300"], "--max-upload-mb must be above 0 and at most 1048576, got 1e"),
        (["--auth", LOGIN, "--max-upload-mb", "nan"], "--max-upload-mb must be above 0 and at most 1048576, got nan"),
        (["--auth", LOGIN, "--port", "99999"], "--port must be 1 to 65535, got 99999"),
    ],
)
def test_serving_beyond_this_machine_needs_a_login_and_bad_access_flags_are_one_line(flags, message, tmp_path, capsys):
    (tmp_path / "logins").write_text("# who may log in\nann:s3:cret-pass\nbob\n")
    (tmp_path / "logins").chmod(0o600)
    (tmp_path / "open").write_text("ann:s3:cret-pass\n")
    (tmp_path / "open").chmod(0o644)
    assert main(["ui", "--out", str(tmp_path / "out"), *(flag.format(tmp=tmp_path) for flag in flags)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and re.search(message, error), error
    assert not (tmp_path / "out").exists()


def test_the_logins_of_an_auth_file_keep_colons_in_passwords(tmp_path):
    from sma.cli.ui import read_auth_file

    (tmp_path / "logins").write_text("# who may log in\nann:s3:cret-pass\n\n  bob:password  \n")
    (tmp_path / "logins").chmod(0o600)
    assert read_auth_file(tmp_path / "logins") == [("ann", "s3:cret-pass"), ("bob", "password")]


def visitor(name: str) -> SimpleNamespace:
    """A gradio.Request as App reads it: who is asking."""
    return SimpleNamespace(session_hash=name)


def page_app(tmp_path, model_dir, reference, **limits) -> tuple[App, dict]:
    """A page on the tiny model (offered by the server's allow-list) and the values of a job of 500 steps at 4 frames
    of 16x16 on a reference uploaded to it, by field name."""
    recipe = tmp_path / "recipe.yaml"
    load_config(overrides={"model": str(model_dir)}).save(recipe)
    app = App(tmp_path / "runs", Limits(models=(str(model_dir),), **limits))
    app.names = {name: name for name in [*FIELDS, "reference"]}
    upload = tmp_path / "runs" / ".uploads" / "0" / "clip.mp4"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(reference.read_bytes())
    values = form("vmc", True, str(recipe)) | {"reference": str(upload), "model": str(model_dir)}
    return app, values | {"train.steps": 500, "video.frames": 4, "video.height": 16, "video.width": 16}


def test_every_call_of_the_job_goes_through_one_admission(model_dir, reference, tmp_path):
    """The job's function called directly (as gradio's API lets a visitor): under --max-queue 1 one job runs, one
    waits, the rest are refused, a visitor holds one place, and a call given up frees its place."""
    app, values = page_app(tmp_path, model_dir, reference, max_queue=1)
    first = app.run(values | {"name": "first"}, visitor("ann"))
    assert next(first)[0].startswith("Running **first**")
    calls = {name: app.run(values | {"name": name}, visitor(name)) for name in ("bob", "eve", "mallory", "trent")}
    status = {name: next(call)[0] for name, call in calls.items()}
    assert status["bob"] == "**Queued:** another job (first) is running; yours starts when it ends."
    for name in ("eve", "mallory", "trent"):
        assert status[name].startswith("**Refused:** the queue is full (1 waiting,"), status[name]
    again = next(app.run(values | {"name": "again"}, visitor("ann")))[0]
    assert again == "**Refused:** this page already has a job running or waiting; cancel it first."
    calls["bob"].close()  # bob's call ends without ever running: its place is free
    waiting = app.run(values | {"name": "eve"}, visitor("eve"))
    assert next(waiting)[0].startswith("**Queued:**")
    app.cancel(visitor("ann"))
    assert [shown[0] for shown in first][-1].startswith("**Cancelled:** stopped at step")
    assert app.admission.holders() == ["eve"] and not app.admission.running
    app.cancel(visitor("eve"))
    assert [shown[0] for shown in waiting] == ["Cancelled before it started."] and not app.admission.holders()


def test_a_job_past_its_time_limit_stops_with_one_line_and_keeps_its_checkpoint(model_dir, reference, tmp_path):
    app, values = page_app(tmp_path, model_dir, reference, job_minutes=0.002)  # 0.12 s: past it by the first step
    status = [shown[0] for shown in app.run(values | {"name": "slow"}, visitor("ann"))]
    assert status[-1].startswith("**Time limit:** the job ran past the page's 0.002 minutes; stopped at step")
    assert "continue with 'Resume'" in status[-1] and "\n" not in status[-1], status[-1]
    assert list((tmp_path / "runs" / "slow" / "sma" / "checkpoints").glob("step-*"))


def test_a_job_runs_with_every_optional_field_empty(model_dir, reference, tmp_path):
    """Issue 46.1: Run failed unless Settings had been opened (the Run name, a field of the closed accordion, came
    as None); every optional field empty (None, as the page sends them) keeps the recipe's values."""
    app, values = page_app(tmp_path, model_dir, reference)
    small = {"train.steps": 2, "video.frames": 4, "video.height": 16, "video.width": 16, "generate.steps": 2}
    small |= {"generate.inversion_steps": 2}
    load_config(tmp_path / "recipe.yaml", small).save(tmp_path / "recipe.yaml")
    empty = dict.fromkeys(["image", "name", "seed", "sma.global_weight", "sma.local_weight", *small])
    values |= empty | {"compare": False, "generate.untuned": False}
    status = [shown[0] for shown in app.run(values, visitor("ann"))]
    assert status[-1].startswith("**Done:**"), status[-1]
    (job,) = [path for path in app.out.iterdir() if not path.name.startswith(".")]
    config = load_config(job / "sma" / "config.yaml")
    assert (config.train.steps, config.video.frames, config.seed, config.sma.global_weight) == (2, 4, 0, 0.4)


def test_a_request_names_only_the_pages_files_and_models(tmp_path):
    """Findings 1, 9 and 10 of issue 42 where the job is made: a reference or picture outside --out (a path, a
    symlink in the uploads), a model not offered (a folder of this machine), a seed past 2**63, are one line; an
    empty Model or Frames (null through the API) is the recipe's."""
    app = App(tmp_path / "runs")
    app.names = {name: name for name in [*FIELDS, "reference"]}
    uploads = app.out / ".uploads" / "0"
    uploads.mkdir(parents=True)
    (uploads / "clip.mp4").write_bytes(b"0")
    (tmp_path / "secret.mp4").write_bytes(b"0")
    (uploads / "linked.mp4").symlink_to(tmp_path / "secret.mp4")
    values = form("vmc", True) | {"reference": str(uploads / "clip.mp4")}
    assert app.requested(values | {"model": None, "video.frames": None}).configs["sma"].video.frames == 8
    refused = {
        "reference": str(tmp_path / "secret.mp4"),
        "image": str(tmp_path / "secret.mp4"),
        "model": "/etc",
        "seed": 2**70,
    }
    refused = {key: values | {key: value} for key, value in refused.items()}
    refused["symlink"] = values | {"reference": str(uploads / "linked.mp4")}
    refused["dots"] = values | {"reference": str(uploads / ".." / ".." / ".." / "secret.mp4")}
    messages = {}
    for name, request in refused.items():
        with pytest.raises(SmaError) as error:
            app.requested(request)
        messages[name] = str(error.value)
    assert messages["model"] == "the model '/etc' is not one this page offers: choose one from the list"
    assert messages["seed"].startswith("`seed` must be from 0 to 2**63 - 1")
    for name in ("reference", "image", "symlink", "dots"):
        assert "is not one of this page's files" in messages[name], messages[name]
    assert all("\n" not in message for message in messages.values())


def test_a_login_ends_after_its_session_hours():
    """Finding 8: a session never expired; now a token older than --session-hours is forgotten (gradio's too)."""
    import time

    from sma.ui.access import Guard

    guard = Guard(None, Limits(session_hours=1), origins=set())
    gradio = SimpleNamespace(cookie_id="c", tokens={"old": "ann", "new": "ann"})
    guard.issued = {"old": time.monotonic() - 3601, "new": time.monotonic()}
    assert not guard.logged_in({"cookie": "access-token-c=old"}, gradio) and "old" not in gradio.tokens
    assert guard.logged_in({"cookie": "a=b; access-token-unsecure-c=new"}, gradio)
    assert not guard.logged_in({"cookie": "access-token-c=forged"}, gradio)
