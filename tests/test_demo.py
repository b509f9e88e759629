"""`sma demo` end to end on a tiny model (the embedded one is exercised by the README command)."""

import json

import pytest

from sma.cli import main
from sma.embedded import MODEL_DIRS, embedded_model
from sma.errors import SmaError
from tiny_models import build_text_to_video


def test_demo_writes_every_video_and_metric(tmp_path, capsys):
    model = build_text_to_video(tmp_path / "model")
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--model", str(model), "--steps", "2", "--sampling-steps", "2"])
    assert code == 0
    names = {path.name for path in out.iterdir()}
    assert {"reference.mp4", "comparison.mp4", "comparison.gif", "metrics.json"} <= names
    for kind in ("untuned", "inverted", "sma", "nosma"):
        assert sum(name.startswith(f"{kind}-") and name.endswith(".mp4") for name in names) == 2, kind
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["summary"]) == ["untuned", "inverted", "sma", "nosma"]
    assert len(metrics["outputs"]) == 8
    assert all("trajectory_error_px" in entry and "robust_motion_fidelity" in entry for entry in metrics["outputs"])
    assert "results in" in capsys.readouterr().out
    assert main(["demo", "--out", str(out), "--model", str(model)]) == 2  # no silent overwrite
    from sma.demo import DEMO_FILE
    from sma.run_folder import check_run_dir

    assert check_run_dir(out, overwrite=True, resume=False, marker=DEMO_FILE) == out  # --overwrite may replace it


def test_the_hard_demo_scores_against_the_ground_truth(tmp_path, capsys):
    """16 frames of a textured, panning scene; scored by the object's colour, the camera and the leakages."""
    model = build_text_to_video(tmp_path / "model")
    out = tmp_path / "demo"
    arguments = ["--model", str(model), "--steps", "1", "--sampling-steps", "2", "--world", "hard"]
    assert main(["demo", "--out", str(out), *arguments]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world"] == "hard" and "textured white and black background" in metrics["reference_prompt"]
    assert "camera panning" in metrics["reference_prompt"] and len(metrics["outputs"]) == 8
    keys = ("object_error_px", "camera_error_px", "texture_leakage", "colour_leakage", "appearance_accuracy")
    for entry in metrics["outputs"]:
        assert all(isinstance(entry[key], float) for key in keys), entry
    assert "on a checkered gray and white background" in metrics["outputs"][0]["target"]
    printed = capsys.readouterr().out
    assert "object error (px)" in printed and "texture leakage" in printed
    assert len(json.loads((out / "demo.json").read_text())) == 5 and (out / "reference.mp4").is_file()


@pytest.mark.parametrize("world", ["simple", "hard"])
def test_missing_embedded_model_is_a_clear_error(monkeypatch, tmp_path, world):
    monkeypatch.setitem(MODEL_DIRS, world, tmp_path / "nothing")
    with pytest.raises(SmaError, match=f"embedded model is missing.*--world {world}"):
        embedded_model(world)


def test_the_demo_replaces_only_a_demo_folder(tmp_path, capsys):
    from sma.cli import main

    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["demo", "--out", str(precious), "--steps", "1", "--sampling-steps", "2", "--overwrite"]) == 2
    assert "holds no run (demo.json)" in capsys.readouterr().err and (precious / "notes.txt").exists()
