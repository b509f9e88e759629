import numpy as np
import pytest

from sma.metrics import displacement_distances, trajectory_error
from sma.video import MovingObject, synthetic_video


def test_displacement_distances_formula():
    rng = np.random.default_rng(0)
    estimated, truth = rng.normal(size=(2, 5, 2)), rng.normal(size=(2, 5, 2))
    expected = np.empty((2, 5))
    for n in range(2):
        for k in range(5):
            d = (estimated[n, k] - estimated[n, 0]) - (truth[n, k] - truth[n, 0])
            expected[n, k] = np.sqrt(d[0] ** 2 + d[1] ** 2)
    np.testing.assert_allclose(displacement_distances(estimated, truth), expected)
    assert displacement_distances(truth + 3.0, truth).max() == pytest.approx(0.0)  # a shifted start costs nothing


@pytest.mark.parametrize(
    "obj",
    [
        MovingObject("square", "red", "linear", start=(0.25, 0.3), end=(0.75, 0.6)),
        MovingObject("star", "blue", "circular", start=(0.5, 0.25), end=(0.5, 0.5), rotation=90, scale=(1, 1.4)),
        MovingObject("triangle", "green", "bounce", start=(0.2, 0.7), end=(0.8, 0.7), turns=2),
    ],
)
def test_a_video_follows_its_own_ground_truth(obj):
    video = synthetic_video(obj, background="gradient", num_frames=12)
    error = trajectory_error(video.frames, video.trajectories, video.sizes)
    assert error.mean_error < 1.0
    assert error.relative_error == pytest.approx(error.mean_error / np.hypot(64, 64))
    assert "lucas-kanade" in error.tracker


def test_a_different_trajectory_is_far_off():
    truth = synthetic_video(MovingObject("square", motion="linear", start=(0.25, 0.3), end=(0.75, 0.6)), num_frames=12)
    other = synthetic_video(MovingObject("square", motion="linear", start=(0.25, 0.3), end=(0.3, 0.8)), num_frames=12)
    error = trajectory_error(other.frames, truth.trajectories, truth.sizes)
    assert error.mean_error > 8.0 and error.final_error > error.mean_error
    assert len(error.per_object) == 1


def test_two_objects_are_scored_separately():
    objects = [
        MovingObject("circle", "red", "linear", start=(0.2, 0.25), end=(0.8, 0.25)),
        MovingObject("square", "blue", "linear", start=(0.8, 0.75), end=(0.2, 0.75)),
    ]
    video = synthetic_video(objects, num_frames=10)
    error = trajectory_error(video.frames, video.trajectories, video.sizes)
    assert max(error.per_object) < 1.0
    starts, travels = video.trajectories[:, :1], video.trajectories - video.trajectories[:, :1]
    swapped = trajectory_error(video.frames, starts + travels[::-1], video.sizes)  # each told to move like the other
    assert min(swapped.per_object) > 10.0
