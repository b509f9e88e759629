"""The targets of the metric card (issue 13) as tests: re-encoded copies >= 0.95, the same motion with
another look or placement >= 0.85 (of self, which is 1), other motion far lower.

Values measured with these settings are in docs/results.md; the thresholds leave room for
run-to-run changes (the mp4 writer does not give identical bytes on every run).
"""

from pathlib import Path

import numpy as np
import pytest

from sma.metrics import flow_similarity, motion_magnitude, robust_motion_fidelity, trajectory_error, video_flow
from sma.metrics.card import (
    as_reference,
    motion_changes,
    recoloured,
    reencodings,
    scene_paths,
    textured_scene,
    translated,
)
from sma.video import read_video

CLIPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "clips"


def check_card(reference, keeps: dict, changes: dict, gap: float) -> None:
    reference_flow = video_flow(reference)
    assert robust_motion_fidelity(reference_flow, reference).motion_fidelity == pytest.approx(1.0)
    kept = {name: robust_motion_fidelity(reference_flow, video).motion_fidelity for name, video in keeps.items()}
    changed = {name: robust_motion_fidelity(reference_flow, video).motion_fidelity for name, video in changes.items()}
    for name in ("mp4 crf 30", "gif", "png frames", "half size"):
        assert kept[name] >= 0.95, (name, kept[name])
    assert min(kept.values()) >= 0.85, kept
    assert max(changed.values()) <= min(kept.values()) - gap, (kept, changed)


@pytest.fixture(scope="module")
def scene():
    return textured_scene(size=128)


def test_the_scene_follows_its_ground_truth(scene):
    assert scene.frames.shape == (16, 128, 128, 3) and scene.trajectories.shape == (2, 16, 2)
    assert trajectory_error(scene.frames, scene.trajectories, scene.sizes).mean_error < 0.5
    shifted = textured_scene(size=128, offset=0.05)
    np.testing.assert_allclose(shifted.trajectories - scene.trajectories, 6.4)
    assert not np.array_equal(textured_scene(size=128, look=1).frames, scene.frames)
    with pytest.raises(ValueError, match="circular or zigzag"):
        scene_paths("linear")


def test_synthetic_card_targets(scene, tmp_path):
    reference = as_reference(scene.frames, tmp_path / "reference")
    keeps = reencodings(scene.frames, tmp_path) | {
        "new look": as_reference(textured_scene(size=128, look=1).frames, tmp_path / "look"),
        "shifted": as_reference(textured_scene(size=128, offset=0.05).frames, tmp_path / "shifted"),
    }
    changes = motion_changes(reference) | {"other path": textured_scene("zigzag", size=128).frames}
    check_card(reference, keeps, changes, gap=0.5)


def test_flow_metrics_on_the_synthetic_card(scene, tmp_path):
    reference = video_flow(as_reference(scene.frames, tmp_path / "reference"))
    copies = {name: video_flow(video) for name, video in reencodings(scene.frames, tmp_path).items()}
    changes = {name: video_flow(video) for name, video in motion_changes(reference.frames).items()}
    for name, copy in copies.items():
        assert flow_similarity(reference, copy).cosine > 0.98, name
        assert motion_magnitude(copy) == pytest.approx(motion_magnitude(reference), rel=0.1), name
    assert flow_similarity(reference, changes["reversed"]).cosine < 0
    assert flow_similarity(reference, changes["shuffled"]).relative_endpoint_error > 1
    assert motion_magnitude(changes["shuffled"]) > 1.2 * motion_magnitude(reference)


@pytest.mark.skipif(not CLIPS.is_dir(), reason="the real clips (../shared/clips) are not here")
# the hardest to separate, and the smallest motion, mostly up and down: mirrored left to right it keeps most of its
# motion, which the step-weighted cosine credits (0.64 against 0.98 for the copies; docs/results.md)
@pytest.mark.parametrize(("name", "gap"), [("car-turn", 0.35), ("rabbit-watermelon", 0.3)])
def test_real_clip_card_targets(name, gap, tmp_path):
    raw = read_video(CLIPS / f"{name}.mp4", 12, stride=2, size=(256, 256))
    reference = as_reference(raw, tmp_path / "reference")
    keeps = reencodings(raw, tmp_path) | {"new look": recoloured(raw), "shifted": translated(raw)}
    check_card(reference, keeps, motion_changes(reference), gap=gap)


# 64 and 256 px: the worst case there is 0.989 and 0.990; at 128 px it is 0.957 (non-rigid, crf 30; the card in
# docs/results.md), closer to 0.95 than x264's run-to-run differences allow in a test
@pytest.mark.parametrize("size", [64, 256])
def test_every_kind_of_hard_scene_keeps_its_score_through_reencoding(size, tmp_path):
    """Issue 36: camera pan and zoom, two objects, non-rigid bodies, changes of speed on textured backgrounds (the
    hard world's scenes, none of which the metric was tuned on before): the same frames as png, gif and mp4 at
    crf 18 and 30 score at least 0.95 both ways against the reference's mp4."""
    from benchmark_scripts import load_script

    from sma.video import write_video

    copies = {"png": ("frames", {}), "gif": ("copy.gif", {}), "crf 18": ("crf18.mp4", {"quality": 18})}
    copies["crf 30"] = ("crf30.mp4", {"quality": 30})
    for scene, frames in load_script("metric_card").hard_scenes(size, 16).items():
        reference = video_flow(read_video(write_video(tmp_path / scene / "reference.mp4", frames)))
        for name, (file, options) in copies.items():
            copy = read_video(write_video(tmp_path / scene / file, frames, **options))
            score = robust_motion_fidelity(reference, copy)
            assert min(score.motion_fidelity, score.reference_to_generated) >= 0.95, (scene, name, score)
