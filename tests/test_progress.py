"""Progress reports and stop requests (`sma.progress`): what the web page draws and how its Cancel works."""

import json
import threading

import pytest
from test_transfer import tiny_config

from sma import progress
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


@pytest.mark.parametrize(("interval", "lines"), [(3600.0, 2), (0.0, 41)])
def test_a_bar_in_a_log_is_a_line_at_the_start_at_intervals_and_at_the_end(monkeypatch, capsys, interval, lines):
    monkeypatch.setattr(progress, "INTERVAL", interval)
    assert list(track(range(40), "sample", 40)) == list(range(40))
    printed = capsys.readouterr().err
    assert "\r" not in printed and len(printed.splitlines()) == lines, printed
    assert printed.startswith("sample:   0% 0/40 ") and printed.splitlines()[-1].startswith("sample: 100% 40/40 ")


def test_watching_is_per_thread():
    seen, other = [], []
    with watch(seen.append) as watcher:
        watcher.stop.set()
        thread = threading.Thread(target=lambda: other.extend(track(range(2), "sample", 2, show=False)))
        thread.start()
        thread.join()
    assert other == [0, 1] and seen == []


def test_a_transfer_reports_every_phase_and_the_losses(model_dir, reference, tmp_path, capsys):
    """Reports to the watcher; to stderr that is not a terminal (a log), a line as each phase starts and ends (the
    last training line with its losses), no carriage-return frames."""
    steps: list[Step] = []
    with watch(steps.append):
        run_dir = transfer(tiny_config(model_dir, **{"train.steps": 3}), reference, tmp_path / "run")
    printed = capsys.readouterr().err
    assert "\r" not in printed
    lines = printed.splitlines()
    for phase, total in (("train vmc", 3), ("invert", 3), ("sample", 3)):
        started = [line for line in lines if line.startswith(f"{phase}:   0% 0/{total} ")]
        ended = [line for line in lines if line.startswith(f"{phase}: 100% {total}/{total} ")]
        assert len(started) == len(ended) == 1, (phase, printed)
    assert "loss=" in next(line for line in lines if line.startswith("train vmc: 100%"))
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
