"""`sma.evaluation`: one score for every caller, one table of metrics, old keys read as today's."""

import pytest

from sma.embedded.world import reference_clip
from sma.evaluation import BY_KEY, HEADLINE, METRICS, GroundTruth, Target, current_keys, means, score, table_text
from sma.video.synthetic import MovingObject

PATH = {"motion": "zigzag", "start": (0.25, 0.5), "end": (0.75, 0.5), "size": 0.35}


def test_score_tells_a_perfect_transfer_from_a_copy_and_from_another_motion():
    clip = reference_clip(MovingObject("circle", "red", **PATH))
    wanted = Target("a blue square on a white background", (("blue", "square"),), "plain")
    truth = GroundTruth(clip, "plain", wanted)
    transfer = reference_clip(MovingObject("square", "blue", **PATH)).frames
    perfect = score(clip.frames, transfer, truth=truth)
    assert perfect[HEADLINE] > 0.9 and perfect["motion_fidelity_lk"] > 0.9
    assert perfect["trajectory_error_px"] < 1.0 and perfect["object_error_px"] < 1.0
    assert perfect["appearance_accuracy"] == 1.0 and perfect["colour_leakage"] == 0.0
    assert "camera_error_px" not in perfect and "texture_leakage" not in perfect  # plain ground shows neither
    copy = score(clip.frames, clip.frames, truth=truth)
    assert copy["appearance_accuracy"] == 0.0 < copy["colour_leakage"]
    moved = reference_clip(MovingObject("square", "blue", "linear", start=(0.75, 0.25), end=(0.25, 0.75), size=0.35))
    elsewhere = score(clip.frames, moved.frames, truth=truth)
    assert elsewhere[HEADLINE] < 0.5 and elsewhere["trajectory_error_px"] > 5
    assert set(perfect) >= {metric.key for metric in METRICS if metric.key in elsewhere}


def test_every_metric_has_one_key_and_old_keys_load_as_todays():
    assert len(BY_KEY) == len(METRICS)
    old = {"motion_fidelity": 0.4, "two_sided": 1.2, "robust_two_sided": 1.0, "tracker": "lucas-kanade", "seed": 3}
    assert current_keys(old) == {
        "motion_fidelity_lk": 0.4,
        "motion_fidelity_lk_two_sided_mean": 0.6,  # files of before the mean held the sum
        "robust_two_sided_mean": 0.5,
        "lk_tracker": "lucas-kanade",
        "seed": 3,
    }
    today = {"motion_fidelity_lk": 0.7, "motion_fidelity_lk_two_sided_mean": None}
    assert current_keys(today) == today
    assert current_keys({"motion_fidelity_two_sided": None}) == {"motion_fidelity_lk_two_sided_mean": None}


def test_means_and_the_printed_table_skip_what_is_unmeasured():
    records = [
        {"kind": "sma", HEADLINE: 0.8, "colour_leakage": 0.1},
        {"kind": "sma", HEADLINE: None, "colour_leakage": 0.3},
        {"kind": "nosma", HEADLINE: 0.4},
    ]
    found = means(records, by="kind")
    assert found["sma"] == {HEADLINE: 0.8, "colour_leakage": pytest.approx(0.2)}
    assert found["nosma"] == {HEADLINE: 0.4}
    text = table_text([{"videos": kind} | values for kind, values in found.items()], label="videos")
    header, first, second = text.splitlines()
    assert header.split("  ")[0] == "videos" and "motion fidelity (robust)" in header and "colour leakage" in header
    assert first.split()[:3] == ["sma", "0.8000", "0.200"] and second.split() == ["nosma", "0.4000", "-"]
    assert "MF (Lucas-Kanade)" not in header


def test_a_score_on_few_tracks_says_so():
    """Issue 46: a score resting on a handful of tracks looked like any other."""
    from sma.evaluation import MIN_TRACKS, track_warning

    enough = {HEADLINE: 0.9, "robust_reference_tracks": MIN_TRACKS, "robust_generated_tracks": 300}
    few = enough | {"robust_reference_tracks": 8}
    none = enough | {HEADLINE: None, "robust_generated_tracks": 0}
    assert track_warning(enough) is None and track_warning({HEADLINE: 0.9}) is None  # old records have no counts
    assert "rests on 8 reference and 300 output tracks, fewer than 20" in track_warning(few)
    assert "no moving point was tracked in the output" in track_warning(none)
    header, row = table_text([{"video": "a"} | few]).splitlines()
    assert "tracks (reference)" in header and row.split()[-2:] == ["8", "300"]


def test_scores_on_enough_grey_tracks_are_as_before():
    """The colour fallback (issue 46) leaves every score whose grey flow keeps MIN_TRACKS tracks in both videos as it
    was, bit for bit and with the same tracker description, so committed results rescore as they were."""
    import numpy as np

    from sma.embedded.world import HardWorld
    from sma.metrics import robust_motion_fidelity

    rng = np.random.default_rng(11)
    first, second = (HardWorld(size=64).random_clip(rng)[0].frames for _ in range(2))
    scores = score(first, second)
    before = robust_motion_fidelity(first, second)  # grey flow alone, as every score was computed before
    assert (before.reference_tracks, before.generated_tracks) == (343, 331)
    assert {f"robust_{key}": value for key, value in before.as_dict().items()} == {
        key: value for key, value in scores.items() if key.startswith("robust_")
    }


def test_transfer_says_when_a_motion_score_rests_on_colour_flow(tmp_path):
    """Issue 46: `sma transfer`'s closing lines say what each robust score rests on: its tracks and, where grey flow
    kept too few, the colour fallback."""
    import json

    from sma.cli.transfer import summary
    from sma.metrics.motion_fidelity import COLOUR_FALLBACK
    from sma.report import METRICS_FILE

    fallback = f"{COLOUR_FALLBACK}tracked on CIELAB a* flow, as grey flow kept 0 reference and 3 output tracks"
    scores = {"robust_motion_fidelity": 0.81, "motion_fidelity_lk": 0.5, "robust_reference_tracks": 221}
    outputs = [
        {"video": "videos/00.mp4", **scores, "robust_generated_tracks": 180, "robust_tracker": f"dis flow; {fallback}"},
        {"video": "videos/01.mp4", **scores, "robust_generated_tracks": 300, "robust_tracker": "dis flow"},
    ]
    (tmp_path / METRICS_FILE).write_text(json.dumps({"outputs": outputs}))
    lines = summary(tmp_path).splitlines()
    assert (
        lines[0]
        == "videos/00.mp4: motion fidelity 0.810 (robust on 221 reference, 180 output tracks), 0.500 (Lucas-Kanade)"
    )
    assert lines[1:] == [f"  {fallback}", lines[2]] and lines[2].startswith("videos/01.mp4")
