"""MTBench's motion fidelity (DeT's evaluation.py) against its definition written out with loops."""

import numpy as np
import pytest

from sma.metrics.mtbench import cosine_similarity, frechet_similarity, mtbench_motion_fidelity
from sma.video import MovingObject, synthetic_video


def cosine_by_hand(tracks, others):
    """DeT lines 55-86: [start, steps...] per track, each row divided by its length, mean of the row dots."""
    result = np.zeros((len(tracks), len(others)))
    for i, track in enumerate(tracks):
        for j, other in enumerate(others):
            rows = [track[0]] + [track[t] - track[t - 1] for t in range(1, len(track))]
            other_rows = [other[0]] + [other[t] - other[t - 1] for t in range(1, len(other))]
            dots = [a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(rows, other_rows, strict=True)]
            result[i, j] = np.mean(dots)
    return result


def frechet_by_hand(tracks, others):
    """DeT lines 22-51: scipy's cdist(traj1, traj2).mean(), then 1 / (1 + d)."""
    result = np.zeros((len(tracks), len(others)))
    for i, track in enumerate(tracks):
        for j, other in enumerate(others):
            distances = [np.hypot(*(p - q)) for p in track for q in other]
            result[i, j] = 1 / (1 + np.mean(distances))
    return result


def test_the_terms_match_deTs_definition_written_out():
    rng = np.random.default_rng(0)
    tracks, others = rng.random((5, 6, 2)), rng.random((4, 6, 2))
    np.testing.assert_allclose(cosine_similarity(tracks, others), cosine_by_hand(tracks, others), rtol=1e-12)
    np.testing.assert_allclose(frechet_similarity(tracks, others), frechet_by_hand(tracks, others), rtol=1e-12)
    # a track against itself: cosine 1, but the "Fréchet" term is below 1 (it averages over every pair of times)
    assert cosine_similarity(tracks[:1], tracks[:1])[0, 0] == pytest.approx(1)
    assert frechet_similarity(tracks[:1], tracks[:1])[0, 0] < 1


def test_a_video_scores_high_against_itself_and_lower_against_other_motion():
    def clip(motion):
        return synthetic_video(MovingObject("circle", "red", motion), num_frames=8, height=48, width=48).frames

    same = mtbench_motion_fidelity(clip("linear"), clip("linear"))
    other = mtbench_motion_fidelity(clip("linear"), clip("zigzag"))
    assert (
        same.cosine == pytest.approx(1, abs=1e-6) and same.hybrid == 0.5 * same.cosine + 0.5 * same.frechet_similarity
    )
    assert other.cosine < same.cosine and other.hybrid < same.hybrid
    assert mtbench_motion_fidelity(clip("linear"), clip("zigzag")) == other  # the drawn tracks are seeded


def test_a_box_keeps_the_grid_points_inside_it_in_both_videos():
    frames = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=8, height=48, width=48).frames
    whole = mtbench_motion_fidelity(frames, frames)
    boxed = mtbench_motion_fidelity(frames, frames, box=(0, 0, 24, 48))  # the left half
    assert boxed.reference_tracks == boxed.generated_tracks < whole.reference_tracks
    with pytest.raises(ValueError, match="selects no pixel"):
        mtbench_motion_fidelity(frames, frames, box=(10, 10, 10, 10))
