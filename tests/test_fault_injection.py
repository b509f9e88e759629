"""kill -9 at random points of training, checkpointing and writing; then resume: nothing is lost or half-written.

A forked child trains with a profiler that counts the calls made in sma's code and in the
modules that write files, and SIGKILLs itself at a chosen call. Each run is killed first at a
call made while a file or folder is being written, each seed in another writer (checkpoint,
adapter and config, the run's starting files, metrics, ...), then, resumed, at a call drawn
among all (a point past its end lets it finish), then resumed to the end.
"""

import json
import os
import random
import shutil
import signal
import sys
from pathlib import Path

import pytest
import safetensors
import torch
from safetensors.torch import load_file

import sma
from sma.checkpoints import checkpoints
from sma.recipes import load_config
from sma.runs import Adapter, train
from sma.video import read_video

SEEDS = 10  # runs; each is killed twice (resume, or overwrite of a finished run), then resumed to the end
WRITERS = {"save_checkpoint", "save", "begin", "write_metrics", "_swap", "atomic_output"}  # sma functions that write
WATCHED = tuple(
    str(Path(module.__file__).parent) if module.__file__.endswith("__init__.py") else module.__file__
    for module in (sma, safetensors, shutil, json, os, __import__("pathlib"), __import__("tempfile"))
)
SMA = str(Path(sma.__file__).parent)


class KillPoints:
    """A profiler that numbers the watched calls, notes which writer (outermost) each happens in, and kills at
    `kill_at`."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at, self.count, self.writers = kill_at, 0, []
        self.writing: dict[str, list[int]] = {}

    def __call__(self, frame, event, _arg) -> None:
        code = frame.f_code
        if event not in ("call", "c_call", "return") or not code.co_filename.startswith(WATCHED):
            return
        writer = event != "c_call" and code.co_name in WRITERS and code.co_filename.startswith(SMA)
        if event == "return":
            if writer:
                self.writers.pop()
            return
        if writer:
            self.writers.append(code.co_name)
        if self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.writers:
            self.writing.setdefault(self.writers[0], []).append(self.count)
        self.count += 1


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
        }
    )


def killed_run(model_dir, reference, out, kill_at: int, **mode) -> bool:
    """Train in a forked child that kills itself at call `kill_at`; True when it was killed."""
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            sys.setprofile(KillPoints(kill_at))
            train(settings(model_dir), reference, out, **mode)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert not os.WIFEXITED(status) or os.WEXITSTATUS(status) == 0, "the child failed without being killed"
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def profiled_run(model_dir, reference, out) -> KillPoints:
    """A fresh run (as the killed runs start: `resume` on a new folder) profiled in a forked child, so that it
    starts from exactly the process state the killed children start from; its kill points come back."""
    sys.stdout.flush(), sys.stderr.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        profile = KillPoints()
        sys.setprofile(profile)
        try:
            train(settings(model_dir), reference, out, resume=True)
        finally:
            sys.setprofile(None)
            with os.fdopen(write, "w") as pipe:
                json.dump({"count": profile.count, "writing": profile.writing}, pipe)
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        recorded = json.load(pipe)
    os.waitpid(pid, 0)
    profile = KillPoints()
    profile.count, profile.writing = recorded["count"], recorded["writing"]
    return profile


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


@pytest.fixture
def one_thread():
    """Forked children cannot use the parent's OpenMP pool (a parallel region hangs), and one thread
    everywhere keeps every run's rounding the same: torch runs serially for the whole test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_anywhere_then_resume_gives_the_uninterrupted_adapter(model_dir, reference, tmp_path, one_thread):
    train(settings(model_dir), reference, tmp_path / "warm-up")  # first-time imports: the children do not repeat them
    profile = profiled_run(model_dir, reference, tmp_path / "straight")
    straight = Adapter.load(tmp_path / "straight" / "adapter").tensors
    writers = sorted(profile.writing)
    assert {"begin", "save", "save_checkpoint", "write_metrics"} <= set(writers), writers

    killed = 0
    for seed in range(SEEDS):
        rng = random.Random(seed)
        out = tmp_path / f"run-{seed}"
        replacing = seed % 3 == 2  # a finished run replaced with `overwrite`, killed midway
        if replacing:
            shutil.copytree(tmp_path / "straight", out)
        for attempt in range(2):
            writer = writers[seed % len(writers)]
            point = rng.choice(profile.writing[writer]) if attempt == 0 else rng.randrange(profile.count)
            mode = {"overwrite": True} if replacing else {"resume": True}
            hit = killed_run(model_dir, reference, out, point, **mode)
            assert hit or attempt == 1, f"the first kill point of seed {seed} ({writer}) was not reached"
            killed += hit
            assert_whole(out)
            if replacing:  # the old run, or the new one complete: never a mix
                assert all(
                    torch.equal(straight[name], tensor)
                    for name, tensor in Adapter.load(out / "adapter").tensors.items()
                )
        train(settings(model_dir), reference, out, resume=True)
        resumed = Adapter.load(out / "adapter").tensors
        assert resumed.keys() == straight.keys()
        assert all(torch.equal(straight[name], resumed[name]) for name in straight), seed
        steps = [json.loads(line)["step"] for line in (out / "losses.jsonl").read_text().splitlines()]
        assert steps == [0, 1, 2], seed
        assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(f".run-{seed}")) == []
    print(f"{killed} of {2 * SEEDS} kill points hit the run ({profile.count} calls; writers {writers})")
