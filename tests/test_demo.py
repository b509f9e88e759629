"""`sma demo` end to end on a tiny model (the embedded one is exercised by the README command)."""

import json

import pytest

from sma.backbones.tiny import build_text_to_video
from sma.cli import main
from sma.embedded import embedded_model
from sma.errors import SmaError


def test_demo_writes_every_video_and_metric(tmp_path, capsys):
    model = build_text_to_video(tmp_path / "model")
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--model", str(model), "--steps", "2", "--sampling-steps", "2"])
    assert code == 0
    names = {path.name for path in out.iterdir()}
    assert {"reference.mp4", "comparison.mp4", "comparison.gif", "metrics.json"} <= names
    for kind in ("untuned", "sma", "nosma"):
        assert sum(name.startswith(f"{kind}-") and name.endswith(".mp4") for name in names) == 2, kind
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["summary"]) == {"untuned", "sma", "nosma"}
    assert len(metrics["outputs"]) == 6
    assert all("trajectory_error_px" in entry and "motion_fidelity" in entry for entry in metrics["outputs"])
    assert "results in" in capsys.readouterr().out
    assert main(["demo", "--out", str(out), "--model", str(model)]) == 2  # no silent overwrite
    from sma.demo import DEMO_FILE
    from sma.run_folder import check_run_dir

    assert check_run_dir(out, overwrite=True, resume=False, marker=DEMO_FILE) == out  # --overwrite may replace it


def test_missing_embedded_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr("sma.embedded.MODEL_DIR", tmp_path / "nothing")
    with pytest.raises(SmaError, match="embedded model is missing"):
        embedded_model()


def test_the_demo_replaces_only_a_demo_folder(tmp_path, capsys):
    from sma.cli import main

    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["demo", "--out", str(precious), "--steps", "1", "--sampling-steps", "2", "--overwrite"]) == 2
    assert "holds no run (demo.json)" in capsys.readouterr().err and (precious / "notes.txt").exists()
