"""Progress reports and stop requests (`sma.progress`): what the web page draws and how its Cancel works."""

import json
import threading

import pytest
from test_transfer import tiny_config

from sma.progress import RunStopped, Step, track, watch
from sma.runs import transfer
from sma.training import TrainingInterrupted


def test_track_reports_each_step_and_stops_between_steps():
    steps = []
    with watch(steps.append) as watcher:
        assert list(track(range(3), "sample", 3, show=False)) == [0, 1, 2]
        consumed = []
        with pytest.raises(RunStopped, match="stopped during invert, at step 2 of 4"):
            for item in track(range(4), "invert", 4, show=False):
                consumed.append(item)
                if item == 1:
                    watcher.stop.set()
    assert [(step.phase, step.done, step.total) for step in steps] == [
        ("sample", 1, 3),
        ("sample", 2, 3),
        ("sample", 3, 3),
        ("invert", 1, 4),
        ("invert", 2, 4),
    ]
    assert consumed == [0, 1]
    assert list(track(range(2), "sample", 2, show=False)) == [0, 1]  # outside the block: nobody watches, no stop


def test_watching_is_per_thread():
    seen, other = [], []
    with watch(seen.append) as watcher:
        watcher.stop.set()
        thread = threading.Thread(target=lambda: other.extend(track(range(2), "sample", 2, show=False)))
        thread.start()
        thread.join()
    assert other == [0, 1] and seen == []


def test_a_transfer_reports_every_phase_and_the_losses(model_dir, reference, tmp_path):
    steps: list[Step] = []
    with watch(steps.append):
        run_dir = transfer(tiny_config(model_dir, **{"train.steps": 3}), reference, tmp_path / "run")
    train = [step for step in steps if step.phase == "train"]
    assert [(step.done, step.total) for step in train] == [(1, 3), (2, 3), (3, 3)]
    logged = [json.loads(line) for line in (run_dir / "losses.jsonl").read_text().splitlines()]
    assert [step.values for step in train] == [{k: v for k, v in record.items() if k != "step"} for record in logged]
    assert [(step.phase, step.done) for step in steps if step.phase != "train"] == [
        ("invert", 1),
        ("invert", 2),
        ("invert", 3),
        ("sample", 1),
        ("sample", 2),
        ("sample", 3),
    ]


def test_a_stop_during_training_keeps_a_checkpoint_to_resume(model_dir, reference, tmp_path):
    config = tiny_config(model_dir, **{"train.steps": 5, "train.checkpoint_every": 10})
    stop = threading.Event()

    def stop_after_two(step: Step) -> None:
        if step.phase == "train" and step.done == 2:
            stop.set()

    with watch(stop_after_two, stop), pytest.raises(TrainingInterrupted, match="stopped at step 2 of 5"):
        transfer(config, reference, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "step-000002" / "state.json").is_file()
    assert not (tmp_path / "run" / "videos").exists()
    run_dir = transfer(config, reference, tmp_path / "run", resume=True)
    assert (run_dir / "comparison.mp4").is_file()
