"""Ground-truth metrics of synthetic clips against cases with known answers: a clip against itself, a shifted,
reversed or swapped copy, a camera pan of known speed, leaks planted on purpose."""

import numpy as np
import pytest

from sma.metrics.ground_truth import camera_error, camera_motion, colour_leakage, texture_leakage
from sma.metrics.trajectory import colour_trajectory_error, displacement_distances
from sma.video.synthetic import COLOURS, MovingObject, synthetic_video

OBJECTS = (
    MovingObject("star", "red", "zigzag", start=(0.25, 0.3), end=(0.75, 0.3), amplitude=0.08, body="squashing"),
    MovingObject("circle", "blue", "circular", start=(0.5, 0.6), end=(0.5, 0.72), timing="stop-and-go", body="waving"),
)


def scene(background="checkered", colours=("white", "black"), seed=1, **camera):
    return synthetic_video(
        OBJECTS, background=background, background_colours=colours, num_frames=16, seed=seed, **camera
    )


def test_colour_trajectories_known_answers():
    clip = scene(pan=(0.15, 0.05), zoom=(1.0, 1.2))
    colours = [COLOURS["red"], COLOURS["blue"]]
    itself = colour_trajectory_error(clip.frames, clip.trajectories, colours)
    assert itself.mean_error < 0.6 and itself.found == 1.0 and len(itself.per_object) == 2
    shifted = np.roll(clip.frames, (3, -2), axis=(1, 2))  # a layout 3 px lower and 2 px left: same displacements
    assert colour_trajectory_error(shifted, clip.trajectories, colours).mean_error < 0.6
    backwards = colour_trajectory_error(clip.frames[::-1].copy(), clip.trajectories, colours)
    expected = displacement_distances(clip.trajectories[:, ::-1], clip.trajectories).mean(axis=1)
    np.testing.assert_allclose(backwards.per_object, expected, atol=0.6)
    assert min(backwards.per_object) > 5
    swapped = colour_trajectory_error(clip.frames, clip.trajectories, colours[::-1])  # each follows the other's path
    assert min(swapped.per_object) > 5
    missing = colour_trajectory_error(clip.frames, clip.trajectories, [COLOURS["red"], COLOURS["green"]])
    travel = displacement_distances(clip.trajectories[1:, :1].repeat(16, axis=1), clip.trajectories[1:])
    assert missing.per_object[1] == pytest.approx(travel.mean()) and missing.found == pytest.approx(0.5)


def test_camera_of_a_pan_with_known_speed():
    clip = scene(background="textured", pan=(0.25, 0.0))  # 16 px to the right over 15 steps
    maps = camera_motion(clip.frames)
    np.testing.assert_allclose(np.diff(maps[:, 0, 2]), -16 / 15, atol=0.1)  # the scene moves left
    np.testing.assert_allclose(maps[:, :, :2], np.broadcast_to(np.eye(2), (16, 2, 2)), atol=0.01)
    itself = camera_error(clip.frames, clip.camera)
    assert itself.mean_error < 0.3 and itself.relative_error < 0.05


@pytest.mark.parametrize("background", ["textured", "checkered", "spotted"])
def test_camera_error_known_answers(background):
    clip = scene(background, pan=(0.15, -0.1), zoom=(1.0, 1.2))
    assert camera_error(clip.frames, clip.camera).mean_error < 0.5
    still = scene(background)  # the same objects under a still camera: the error is the camera's own travel
    assert camera_error(still.frames, clip.camera).relative_error == pytest.approx(1.0, abs=0.05)
    assert camera_error(still.frames, still.camera).mean_error < 0.1
    assert camera_error(clip.frames[::-1].copy(), clip.camera).relative_error > 1.5


def test_texture_leakage_known_answers():
    reference = scene("textured", pan=(0.2, 0.0))
    other = scene("textured", seed=9, pan=(0.2, 0.0))  # the same kind and contrast, another draw
    assert texture_leakage(reference.frames, reference.frames, reference.masks) == pytest.approx(1.0, abs=1e-6)
    assert texture_leakage(reference.frames, other.frames, reference.masks) < 0.2
    for share in (0.3, 0.5, 0.7):  # a planted leak of equal contrast: a / sqrt(a^2 + (1 - a)^2)
        mixed = np.round(share * reference.frames + (1 - share) * other.frames).astype(np.uint8)
        expected = share / np.hypot(share, 1 - share)
        assert texture_leakage(reference.frames, mixed, reference.masks) == pytest.approx(expected, abs=0.08)
    inverted = scene("textured", colours=("black", "yellow"), pan=(0.2, 0.0))  # same texture, other colours
    assert texture_leakage(reference.frames, inverted.frames, reference.masks) > 0.95
    for kind in ("checkered", "spotted", "striped"):
        assert texture_leakage(reference.frames, scene(kind, pan=(0.2, 0.0)).frames, reference.masks) < 0.2


def test_colour_leakage_counts_only_the_reference_colours_not_asked_for():
    frames = np.full((4, 32, 32, 3), 245, np.uint8)
    frames[:, :8, :8] = COLOURS["red"]  # a planted leak: 64 of 1024 pixels in every frame
    frames[:, 20:, 20:] = COLOURS["blue"]
    assert colour_leakage(frames, [COLOURS["red"]]) == pytest.approx(64 / 1024)
    assert colour_leakage(frames, [COLOURS["red"], COLOURS["blue"]], allowed=[COLOURS["blue"]]) == pytest.approx(
        64 / 1024
    )
    assert colour_leakage(frames, [COLOURS["red"]], allowed=[COLOURS["red"]]) == 0.0
    assert colour_leakage(frames, [COLOURS["green"]]) == 0.0
