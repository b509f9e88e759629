import json

import pytest

from sma.cli import main
from sma.metrics.card import motion_changes, textured_scene
from sma.video import write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    frames = textured_scene(size=64).frames
    return {
        "reference": write_video(folder / "reference.mp4", frames),
        "copy": write_video(folder / "copy.gif", frames),
        "reversed": write_video(folder / "reversed.mp4", motion_changes(frames)["reversed"]),
    }


def test_evaluate_reports_every_motion_metric(tmp_path, videos, capsys):
    report = tmp_path / "scores.json"
    arguments = ["evaluate", str(videos["reference"]), str(videos["copy"]), str(videos["reversed"]), "--no-clip"]
    assert main([*arguments, "--json", str(report)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    titles = ("motion fidelity (robust)", "MF (Lucas-Kanade)", "flow cosine", "flow EPE (relative)", "warping error")
    assert all(title in header for title in (*titles, "motion ratio")), header
    scores = json.loads(report.read_text())
    copy, reversed_ = scores["generated"]
    assert copy["robust_motion_fidelity"] > 0.95 > 0.3 > reversed_["robust_motion_fidelity"]
    assert copy["robust_two_sided_mean"] > 0.95 and copy["robust_generated_tracks"] > 20
    assert copy["flow_cosine"] > 0.95 > 0 > reversed_["flow_cosine"]
    assert copy["flow_relative_endpoint_error"] < 0.3 < 1 < reversed_["flow_relative_endpoint_error"]
    assert copy["motion_magnitude_ratio"] == pytest.approx(1.0, abs=0.1)
    assert reversed_["motion_magnitude_ratio"] == pytest.approx(1.0, abs=0.1)  # magnitude alone cannot see direction
    assert 0 < copy["warping_error"] < 0.01 and scores["reference_warping_error"] > 0
    assert "dis flow" in scores["robust_tracker"] and "lucas-kanade" in scores["lk_tracker"]
    lucas_kanade = ("", "_two_sided_mean", "_reference_to_generated")
    assert {f"motion_fidelity_lk{suffix}" for suffix in lucas_kanade} <= copy.keys()
