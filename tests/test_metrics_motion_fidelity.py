import math
from dataclasses import dataclass

import numpy as np
import pytest
from handmade_flow import handmade

from sma.metrics import (
    LucasKanadeTracker,
    Tracks,
    grid_points,
    motion_fidelity,
    robust_motion_fidelity,
    track_correlation,
)
from sma.video import MovingObject, VideoError, read_video, synthetic_video, write_video

STILL = 0.1


def reference_correlation(a, b, still=STILL):
    """corr(T, T') written out: mean over the steps where either moves of the cosine, 0 against a still step."""
    total, counted = 0.0, 0
    for k in range(len(a) - 1):
        u, v = a[k + 1] - a[k], b[k + 1] - b[k]
        nu, nv = math.hypot(*u), math.hypot(*v)
        if nu < still and nv < still:
            continue
        counted += 1
        if nu >= still and nv >= still:
            total += (u[0] * v[0] + u[1] * v[1]) / (nu * nv)
    return total / counted if counted else 1.0


def test_track_correlation_matches_the_formula():
    rng = np.random.default_rng(0)
    tracks = np.cumsum(rng.normal(size=(5, 7, 2)), axis=1)
    others = np.cumsum(rng.normal(size=(4, 7, 2)), axis=1)
    tracks[1, 3:] = tracks[1, 3]  # a track that stops
    others[2] = others[2, :1]  # a track that never moves
    tracks[4] = tracks[4, :1]
    expected = np.array([[reference_correlation(a, b) for b in others] for a in tracks])
    np.testing.assert_allclose(track_correlation(tracks, others, STILL), expected, atol=1e-12)
    assert track_correlation(tracks, others, STILL)[4, 2] == 1.0  # two still tracks agree


def square(motion="linear", colour="red", start=(0.25, 0.3), end=(0.75, 0.6), background="gradient", **kwargs):
    obj = MovingObject("square", colour, motion, start=start, end=end, **kwargs)
    return synthetic_video(obj, background=background, num_frames=12, height=64, width=64).frames


@pytest.fixture(scope="module")
def reference():
    return square()


def test_a_video_against_itself_is_the_maximum(reference):
    score = motion_fidelity(reference, reference)
    assert score.motion_fidelity == pytest.approx(1.0, abs=1e-6)
    assert score.two_sided_mean == pytest.approx(1.0, abs=1e-6)
    assert score.reference_tracks == score.generated_tracks > 20
    assert "lucas-kanade" in score.tracker


def test_same_motion_in_other_colours_or_elsewhere_stays_high(reference):
    recoloured = square(colour="blue")
    elsewhere = square(start=(0.2, 0.45), end=(0.7, 0.75))
    assert motion_fidelity(reference, recoloured).motion_fidelity > 0.9
    assert motion_fidelity(reference, elsewhere).motion_fidelity > 0.9
    assert motion_fidelity(reference, elsewhere).two_sided_mean > 0.9


def test_other_motion_scores_clearly_lower(reference):
    shuffled = reference[np.random.default_rng(0).permutation(len(reference))]
    others = {
        "reversed": reference[::-1],
        "shuffled": shuffled,
        "circular": square("circular", start=(0.5, 0.25), end=(0.5, 0.5)),
        "upwards": square(start=(0.5, 0.75), end=(0.5, 0.25)),
    }
    for name, video in others.items():
        score = motion_fidelity(reference, video)
        assert score.motion_fidelity < 0.5, name
        assert score.two_sided_mean < 0.5, name


def test_reversal_on_a_textured_background_with_camera_pan():
    def clip(frames_order=slice(None)):
        obj = MovingObject("circle", "yellow", "linear", start=(0.3, 0.5), end=(0.7, 0.5))
        video = synthetic_video(obj, background="textured", pan=(0.2, 0.1), num_frames=12, seed=1)
        return video.frames[frames_order]

    forward = clip()
    assert motion_fidelity(forward, forward).motion_fidelity == pytest.approx(1.0, abs=1e-6)
    assert motion_fidelity(forward, clip(slice(None, None, -1))).motion_fidelity < 0


@pytest.mark.parametrize("name", ["clip.mp4", "clip.gif", "frames"])
def test_files_of_the_same_clip_score_alike(tmp_path, reference, name):
    read = read_video(write_video(tmp_path / name, reference))
    assert motion_fidelity(reference, read).motion_fidelity > 0.95
    assert motion_fidelity(read, reference).two_sided_mean > 0.95


def test_still_videos_are_guarded(reference):
    still = np.repeat(reference[:1], len(reference), axis=0)
    both_still = motion_fidelity(still, still)
    assert both_still.motion_fidelity == 1.0 and both_still.generated_tracks == 0
    lost_motion = motion_fidelity(reference, still)
    assert lost_motion.motion_fidelity == 0.0 and lost_motion.reference_to_generated == 0.0


def test_box_and_mask_select_the_tracked_points(reference):
    everywhere = motion_fidelity(reference, reference)
    on_object = motion_fidelity(reference, reference, box=(8, 12, 28, 32))
    assert 0 < on_object.reference_tracks < everywhere.reference_tracks
    empty_corner = np.zeros((64, 64), bool)
    empty_corner[50:, :10] = True  # the square never goes there: no moving track, both sides still
    assert motion_fidelity(reference, reference, mask=empty_corner).reference_tracks == 0
    with pytest.raises(ValueError, match="mask"):
        motion_fidelity(reference, reference, mask=np.ones((8, 8), bool))


@dataclass(frozen=True)
class ScriptedTracker:
    """A tracker whose points move with a constant velocity chosen per video (by its first pixel)."""

    velocities: dict

    name = "scripted"

    def track(self, frames, points):
        velocity = np.array(self.velocities[int(frames[0, 0, 0, 0])], float)  # (n, 2) or (2,)
        steps = np.arange(len(frames))[None, :, None]
        positions = points[:, None, :] + steps * np.broadcast_to(velocity, points.shape)[:, None, :]
        return Tracks(positions=positions, valid=np.ones(positions.shape[:2], bool))


def test_one_sided_and_two_sided_forms_with_a_pluggable_tracker():
    reference = np.zeros((5, 32, 32, 3), np.uint8)
    generated = np.ones((5, 32, 32, 3), np.uint8)
    half = len(grid_points(32, 32, 4)) // 2
    velocities = {0: (1.0, 0.0), 1: np.array([(1.0, 0.0)] * half + [(0.0, 1.0)] * half)}
    score = motion_fidelity(reference, generated, tracker=ScriptedTracker(velocities), grid_size=4, min_travel=0)
    assert score.tracker == "scripted"
    assert score.motion_fidelity == pytest.approx(0.5)  # half the generated tracks move the other way: corr 0
    assert score.reference_to_generated == pytest.approx(1.0)  # every reference track has a perfect partner
    assert score.two_sided_mean == pytest.approx(0.75)


def test_tracker_loses_points_that_jump():
    frames = square(background="textured")
    jumped = np.concatenate([frames[:6], np.roll(frames[6:], 20, axis=2)])
    tracks = LucasKanadeTracker().track(jumped, grid_points(64, 64, 8))
    assert tracks.valid[:, 5].mean() > 0.8
    assert tracks.valid[:, 6].mean() < 0.2  # the jump breaks the forward-backward check


def test_frame_counts_must_match(reference):
    with pytest.raises(VideoError, match="same number of frames"):
        motion_fidelity(reference, reference[:-1])


def rows_moving(speeds, frames=16, size=64):
    """Handmade flows: rows [16 k, 16 (k + 1)) move right at speeds[k] px per frame, the rest stand still."""
    forward = np.zeros((frames - 1, size, size, 2), np.float32)
    for band, speed in enumerate(speeds):
        forward[:, 16 * band : 16 * (band + 1), :, 0] = speed
    return forward


def test_robust_form_drops_tracks_that_only_jitter():
    forward = rows_moving([2.0])
    reference, generated = forward.copy(), forward.copy()
    for flow, seed in ((reference, 0), (generated, 1)):  # still ground jitters, differently in each video
        flow[:, 16:] = np.random.default_rng(seed).uniform(-0.15, 0.15, size=flow[:, 16:].shape)
    score = robust_motion_fidelity(handmade(reference), handmade(generated), grid_size=32)
    assert score.motion_fidelity == pytest.approx(1.0) and score.two_sided_mean == pytest.approx(1.0)
    assert score.reference_tracks == score.generated_tracks == 8 * 17  # 8 rows, the 17 columns that stay in frame
    assert "dis flow" in score.tracker and "motion share 0.5" in score.tracker
    everything = robust_motion_fidelity(
        handmade(reference), handmade(generated), grid_size=32, motion_share=0, min_travel=0
    )
    assert everything.generated_tracks > 5 * score.generated_tracks  # jitter tracks now count, weighted by travel:
    assert 0.95 < everything.motion_fidelity < 0.999  # small, but no longer exactly 1


def test_robust_form_weights_best_matches_by_travel():
    # reference: rows 0-15 right at 2 px, rows 16-31 right at 1.5 px; generated: the second band goes left
    reference, generated = handmade(rows_moving([2.0, 1.5])), handmade(rows_moving([2.0, -1.5]))
    score = robust_motion_fidelity(reference, generated, grid_size=32)
    # tracks that stay in the 64 px frame for 15 steps: 17 columns at 2 px (travel 30), 21 at 1.5 px (travel 22.5)
    fast, slow = 8 * 17 * 30.0, 8 * 21 * 22.5
    assert score.generated_tracks == score.reference_tracks == 8 * 17 + 8 * 21
    assert score.motion_fidelity == pytest.approx((fast - slow) / (fast + slow))  # leftward tracks match nothing: -1
    assert score.reference_to_generated == pytest.approx(1.0)  # every reference track has a rightward partner
    assert score.two_sided_mean == pytest.approx((1.0 + (fast - slow) / (fast + slow)) / 2)
    top_band = robust_motion_fidelity(reference, generated, grid_size=32, box=(0, 0, 64, 16))
    assert top_band.motion_fidelity == pytest.approx(1.0) and top_band.generated_tracks == 8 * 17


def test_robust_form_guards_still_videos_and_frame_counts():
    moving, still = handmade(rows_moving([2.0])), handmade(rows_moving([]))
    assert robust_motion_fidelity(still, still).motion_fidelity == 1.0
    lost = robust_motion_fidelity(moving, still)
    assert lost.motion_fidelity == 0.0 and lost.reference_to_generated == 0.0
    with pytest.raises(VideoError, match="same number of frames"):
        robust_motion_fidelity(moving, handmade(rows_moving([2.0], frames=8)))


def test_step_weighted_correlation_is_the_length_weighted_mean_of_step_cosines():
    from sma.metrics.motion_fidelity import step_weighted_correlation

    rng = np.random.default_rng(0)
    tracks, others = rng.normal(size=(5, 7, 2)).cumsum(1), rng.normal(size=(4, 7, 2)).cumsum(1)
    others[0] = others[0, :1]  # a track that never moves
    expected = np.ones((5, 4))
    for i, j in np.ndindex(5, 4):
        steps, other_steps = np.diff(tracks[i], axis=0), np.diff(others[j], axis=0)
        lengths, other_lengths = np.linalg.norm(steps, axis=1), np.linalg.norm(other_steps, axis=1)
        cosines = [
            a @ b / (la * lb) if la > 0 and lb > 0 else 0.0
            for a, b, la, lb in zip(steps, other_steps, lengths, other_lengths, strict=True)
        ]
        weights = (lengths + other_lengths) / 2
        expected[i, j] = np.dot(cosines, weights) / weights.sum()
    np.testing.assert_allclose(step_weighted_correlation(tracks, others), expected, rtol=1e-12)
    assert step_weighted_correlation(others[:1], others[:1])[0, 0] == 1.0  # both still
    np.testing.assert_allclose(step_weighted_correlation(tracks, -tracks).diagonal(), -1.0)


def test_the_robust_tracker_keeps_a_scene_at_128_px_as_at_64():
    """Issue 46: a triangle circling over panning stripes kept 0 tracks at 128 px and 192 at 64 px: the
    forward-backward slack was a fixed 0.7 px whatever the frame's size. It now scales with the frame, and 64 px
    clips are tracked exactly as before."""
    from sma.evaluation import MIN_TRACKS

    triangle = MovingObject("triangle", "green", "circular", start=(0.5, 0.25), end=(0.5, 0.5), size=0.3)
    kept = {}
    for size in (64, 128):
        frames = synthetic_video(triangle, background="striped", pan=(0.2, 0.0), num_frames=24, height=size, width=size)
        kept[size] = robust_motion_fidelity(frames.frames[:16], frames.frames[:16]).reference_tracks
    assert kept[128] >= MIN_TRACKS  # 0 before
    assert kept[64] == 192  # as before: 64 px clips (the embedded worlds', the benchmark's) score as they did
