"""kill -9 at chosen points of training, checkpointing, export and generation; then resume or rerun: the result
equals the uninterrupted one, and nothing is lost or half-written.

Each scenario is profiled once (tests/kill_points.py), then killed at some of its calls: one inside each file
writer first, the rest drawn among all calls. `make faults` (SMA_FAULTS=all) tries every scenario's full count
(over a hundred points in all); `make test` tries a subset that changes with the day (SMA_FAULT_ROTATION picks one).
"""

import contextlib
import functools
import json
import os
import random
import resource
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from kill_points import HIT, budget, in_child, killed, profiled, rotation
from safetensors import safe_open
from safetensors.torch import load_file

from sma.checkpoints import checkpoints
from sma.cli import main
from sma.export import export_adapter
from sma.recipes import load_config
from sma.runs import Adapter, generate, train
from sma.video import read_video

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
FAULTS_ONLY = pytest.mark.skipif(  # each needs a whole straight run first: half a minute, more than make test affords
    os.environ.get("SMA_FAULTS") != "all", reason="make faults runs it (SMA_FAULTS=all)"
)
TARGETS = ["a blue square", "a green star"]
NOBODY = 65534


def settings(model_dir):
    return load_config(
        overrides={
            "model": str(model_dir),
            "prompt": "a red circle moving right",
            "video.frames": 4,
            "video.height": 16,
            "video.width": 16,
            "train.steps": 3,
            "train.checkpoint_every": 1,
            "generate.steps": 2,
        }
    )


def assert_whole(out: Path) -> None:
    """Every file a killed run left can be read in full."""
    if not out.exists():
        return
    load_config(out / "config.yaml")
    json.loads((out / "run.json").read_text())
    assert len(read_video(out / "reference.mp4")) == 4
    for checkpoint in checkpoints(out):
        json.loads((checkpoint / "state.json").read_text())
        load_file(checkpoint / "adapter.safetensors"), load_file(checkpoint / "optimizer.safetensors")
    if (out / "losses.jsonl").exists():
        [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    if (out / "adapter").exists():
        Adapter.load(out / "adapter")


def hidden(folder: Path) -> list[str]:
    """What a killed writer could leave behind: hidden temporaries, staging folders, retired runs."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob(".*") if path.name != ".lock")


def lora(path: Path) -> tuple[dict[str, str], dict[str, list]]:
    """An export's metadata and tensors (its bytes vary: safetensors writes the metadata in hash order)."""
    with safe_open(path, "pt") as file:
        names = file.keys()
        return file.metadata(), {name: file.get_tensor(name).tolist() for name in names}


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


@pytest.fixture(scope="module")
def one_thread():
    """Forked children cannot use the parent's OpenMP pool (a parallel region hangs), and one thread
    everywhere keeps every run's rounding the same: torch runs serially for the whole module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def straight(model_dir, reference, tmp_path_factory, one_thread):
    """An uninterrupted run (after a warm-up, so that the children repeat no first-time imports)."""
    folder = tmp_path_factory.mktemp("straight")
    train(settings(model_dir), reference, folder / "warm-up")
    profile = profiled(functools.partial(train, settings(model_dir), reference, folder / "run", resume=True))
    return folder / "run", profile


@pytest.mark.parametrize("replacing", [False, True], ids=["resume", "overwrite"])
def test_kill_9_in_training_then_resume_gives_the_uninterrupted_adapter(
    model_dir, reference, straight, tmp_path, replacing
):
    """Killed inside a writer, then killed again at any call of the resumed run (a point past its end lets it
    finish), then resumed to the end. A finished run replaced with `overwrite` stays whole meanwhile: the old run
    or the new one, never a mix."""
    run, profile = straight
    expected = Adapter.load(run / "adapter").tensors
    seed = rotation() + replacing
    rng = random.Random(seed)
    cases = profile.points(budget(10, 1) if replacing else budget(30, 4), rng)
    hits = 0
    for case, first in enumerate(cases):
        out = tmp_path / f"run-{case}"
        if replacing:
            shutil.copytree(run, out)
        mode = {"overwrite": True} if replacing else {"resume": True}
        work = functools.partial(train, settings(model_dir), reference, out, **mode)
        for attempt, point in enumerate((first, rng.randrange(profile.count))):
            hit = killed(work, point)
            assert hit or attempt == 1, f"rotation {seed}: case {case}'s first kill point ({point}) was not reached"
            hits += hit
            assert_whole(out)
            if replacing:
                assert same_tensors(Adapter.load(out / "adapter").tensors, expected), (seed, case)
        train(settings(model_dir), reference, out, resume=True)
        assert same_tensors(Adapter.load(out / "adapter").tensors, expected), (seed, case)
        steps = [json.loads(line)["step"] for line in (out / "losses.jsonl").read_text().splitlines()]
        assert steps == [0, 1, 2], (seed, case)
        assert hidden(out) == [] and not list(tmp_path.glob(f".run-{case}*")), (seed, case)
    HIT["overwrite" if replacing else "resume"] = hits


def test_kill_9_in_export_then_rerun_gives_the_uninterrupted_file(straight, tmp_path):
    run, _ = straight
    expected = lora(export_adapter(run, "diffusers", tmp_path / "straight.safetensors")[0].path)
    out = tmp_path / "exports" / "lora.safetensors"
    out.parent.mkdir()
    profile = profiled(lambda: export_adapter(run, "diffusers", out, overwrite=True))
    out.unlink()
    seed = rotation()
    points = profile.points(budget(25, 3), random.Random(seed))
    for point in points:
        assert killed(lambda: export_adapter(run, "diffusers", out, overwrite=True), point), (seed, point)
        assert not out.exists() or lora(out) == expected, (seed, point)  # absent, or whole
        export_adapter(run, "diffusers", out, overwrite=True)
        assert lora(out) == expected, (seed, point)
        assert hidden(out.parent) == [], (seed, point)
        out.unlink()
    HIT["export"] = len(points)


def test_kill_9_in_generation_then_rerun_gives_the_uninterrupted_videos(straight, tmp_path):
    run, _ = straight
    expected = [read_video(path) for path in generate(run, TARGETS, tmp_path / "straight", seed=3)]
    out = tmp_path / "videos"
    profile = profiled(lambda: generate(run, TARGETS, out, seed=3, overwrite=True))
    shutil.rmtree(out)
    seed = rotation()
    points = profile.points(budget(25, 3), random.Random(seed))
    for point in points:
        assert killed(lambda: generate(run, TARGETS, out, seed=3, overwrite=True), point), (seed, point)
        for video in out.rglob("*.mp4") if out.exists() else []:
            assert len(read_video(video)) == 4, (seed, point, video)  # whole, or absent
        paths = generate(run, TARGETS, out, seed=3, overwrite=True)
        videos = [read_video(path) for path in paths]
        assert all(map(np.array_equal, videos, expected)) and len(videos) == len(expected), (seed, point)
        assert hidden(out) == [], (seed, point)
        shutil.rmtree(out)
    HIT["generation"] = len(points)


def turn(fault: str, out: Path) -> None:
    """The disk fills up (each file now limited to 1 KiB), or `out` turns read-only (for root too: the process
    gives up root, and root's files are read-only to it)."""
    if fault == "full":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        return
    for folder in (out, out / "checkpoints"):
        folder.chmod(0o555)
    if os.geteuid() == 0:
        os.setresgid(NOBODY, NOBODY, NOBODY), os.setresuid(NOBODY, NOBODY, NOBODY)


@contextlib.contextmanager
def traversable(folder: Path):
    """Let anyone pass through `folder`'s ancestors (pytest makes them root's alone), as a user's home would."""
    ancestors = [path for path in folder.parents if path != Path(path.anchor)]
    modes = {path: path.stat().st_mode for path in ancestors}
    for path in ancestors:
        path.chmod(modes[path] | 0o011)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_full_disk_or_a_folder_turned_read_only_mid_run_is_one_line_and_keeps_the_checkpoint(
    model_dir, reference, tmp_path, fault
):
    """After the first checkpoint the fault strikes: the run stops with one line naming what could not be written,
    the checkpoint is whole, and once the fault is gone a resume finishes the run."""
    out, recipe = tmp_path / "run", tmp_path / "recipe.yaml"
    settings(model_dir).save(recipe)
    command = ["train", str(reference), "--out", str(out), "--config", str(recipe)]
    with traversable(out):
        status, printed = faulted(command, fault, out)
    for folder in (out, out / "checkpoints"):
        folder.chmod(0o755)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 2, printed
    error = printed[printed.index("sma: error: ") :]
    assert len(error.strip().splitlines()) == 1, error
    assert [checkpoint.name for checkpoint in checkpoints(out)] == ["step-000001"], error
    assert_whole(out)
    assert hidden(out) == [], error
    assert main([*command, "--resume"]) == 0
    assert [json.loads(line)["step"] for line in (out / "losses.jsonl").read_text().splitlines()] == [0, 1, 2]


def faulted(command: list[str], fault: str, out: Path) -> tuple[int, str]:
    """Run `command` in a forked child on which `fault` strikes after its first checkpoint; its exit status and
    what it printed to stderr."""

    def run(pipe) -> int:
        sys.stderr = pipe  # pytest's capture holds fd 2 elsewhere

        def strike(frame, event, _arg):
            if event == "return" and frame.f_code.co_name == "save_checkpoint":
                sys.setprofile(None)
                turn(fault, out)

        sys.setprofile(strike)
        return main(command)

    return in_child(run)


def page_job(model_dir, reference, out: Path, resume: bool):
    """The page's job (`sma ui`'s Run, no browser): with and without SMA and the untuned baseline, on the tiny
    model at the settings above; `resume` is the page's Resume box."""
    pytest.importorskip("gradio", reason="the ui extra is not installed: pip install -e '.[ui]'")
    from ui_forms import form

    from sma.ui import make_job

    recipe = out.parent / "page-recipe.yaml"
    if not recipe.exists():
        settings(model_dir).save(recipe)
    values = form(str(recipe)) | {"model": str(model_dir), "name": "job", "resume": resume, "train.steps": 3}
    values |= {"video.frames": 4, "video.height": 16, "video.width": 16, "generate.steps": 2}
    return make_job(values | {"generate.inversion_steps": 2}, str(reference), out)


def run_page_job(job) -> dict:
    """The page's worker on `job`, as Run starts it; what went wrong (nothing: an empty mapping)."""
    import queue
    import threading

    from sma.ui import App

    outcome: dict = {}
    App(job.folder.parent)._work(job, queue.Queue(), threading.Event(), outcome)
    return outcome


def videos(folder: Path) -> dict[str, np.ndarray]:
    """The decoded frames of every video under `folder` (mp4 and gif), by path; every one is read whole."""
    found = {str(path.relative_to(folder)): read_video(path) for path in sorted(folder.rglob("*.mp4"))}
    assert all(len(frames) == 4 for frames in found.values()), folder
    return found | {str(path.relative_to(folder)): read_video(path) for path in sorted(folder.rglob("*.gif"))}


def job_outputs(folder: Path) -> dict[str, object]:
    """Every video a job wrote and each variant's adapter, by path."""
    found: dict[str, object] = dict(videos(folder))
    for variant in ("sma", "nosma"):
        found[f"{variant}/adapter"] = Adapter.load(folder / variant / "adapter").tensors
    return found


def differing(a: dict[str, object], b: dict[str, object]) -> list[str]:
    """The outputs that `a` and `b` do not hold alike (by path)."""
    same = {
        key
        for key in a.keys() & b.keys()
        if (same_tensors if isinstance(a[key], dict) else np.array_equal)(a[key], b[key])
    }
    return sorted((a.keys() | b.keys()) - same)


@FAULTS_ONLY
def test_kill_9_in_a_page_job_then_resume_gives_the_uninterrupted_runs(model_dir, reference, straight, tmp_path):
    """Run pressed on the page, the server killed at a chosen call; pressed again with Resume ticked: the same
    adapters and videos (each variant's, the untuned model's, the comparisons: their decoded frames) as a job never
    interrupted."""
    uninterrupted = page_job(model_dir, reference, tmp_path / "straight", resume=False)
    profile = profiled(functools.partial(run_page_job, uninterrupted))
    expected = job_outputs(uninterrupted.folder)
    seed = rotation()
    points = profile.points(budget(20, 1), random.Random(seed))
    for case, point in enumerate(points):
        out = tmp_path / f"page-{case}"
        assert killed(functools.partial(run_page_job, page_job(model_dir, reference, out, resume=False)), point)
        assert run_page_job(page_job(model_dir, reference, out, resume=True)) == {}, (seed, point)
        assert differing(job_outputs(out / "job"), expected) == [], (seed, point)
        assert hidden(out / "job") == [], (seed, point)
    HIT["page job"] = len(points)


def timeless(record: dict) -> dict:
    """A benchmark record without its time: what it is of (a cell, a target, a video) and every score, exactly."""
    return {key: value for key, value in record.items() if key != "seconds"}


@FAULTS_ONLY
def test_kill_9_while_a_benchmark_writes_then_resume_gives_the_uninterrupted_results(model_dir, tmp_path, one_thread):
    """`sma benchmark` killed while it runs a cell or writes results.jsonl, then resumed: the records of a run never
    interrupted (the same cells, targets, videos, their decoded frames and scores), none lost, none twice."""
    from test_benchmark import write_suite

    from sma.benchmark import read_results, read_suite, run_suite

    suite = read_suite(write_suite(tmp_path, model_dir, frames=4, size=16, variants=["sma"]))
    run = functools.partial(run_suite, suite, progress=False)
    profile = profiled(functools.partial(run, tmp_path / "straight"))
    expected, frames = read_results(tmp_path / "straight"), videos(tmp_path / "straight" / "cells")
    seed = rotation()
    points = profile.points(budget(15, 1), random.Random(seed))
    hits = 0
    for case, point in enumerate(points):
        out = tmp_path / f"bench-{case}"
        hits += killed(functools.partial(run, out), point)  # scoring calls vary with the videos: a late point may pass
        run(out, resume=True)
        records = read_results(out)
        assert [timeless(record) for record in records] == [timeless(record) for record in expected], (seed, point)
        assert differing(videos(out / "cells"), frames) == [], (seed, point)
    HIT["benchmark"] = hits
