import math

import cv2
import numpy as np
import pytest

from sma.video import MovingObject, random_synthetic_video, synthetic_video
from sma.video.synthetic import COLOURS


def colour_centroid(frame, colour, background="white"):
    """Centre (x, y) of a shape, each pixel weighted by its coverage: where it lies between background and colour."""
    ink, paper = np.array(COLOURS[colour], float), np.array(COLOURS[background], float)
    coverage = np.clip((frame.astype(float) - paper) @ (ink - paper) / np.sum((ink - paper) ** 2), 0, 1)
    ys, xs = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]]
    return np.array([(xs * coverage).sum(), (ys * coverage).sum()]) / coverage.sum()


def test_linear_ground_truth_follows_the_formula():
    obj = MovingObject("circle", "red", "linear", start=(0.25, 0.3), end=(0.75, 0.6))
    video = synthetic_video(obj, num_frames=9, height=64, width=80)
    k = np.arange(9)[:, None] / 8
    expected = (np.array([0.25, 0.3]) + k * np.array([0.5, 0.3])) * (80, 64)
    np.testing.assert_allclose(video.trajectories[0], expected)
    assert video.frames.shape == (9, 64, 80, 3) and video.frames.dtype == np.uint8


@pytest.mark.parametrize("motion", ["linear", "ease", "circular", "zigzag", "bounce"])
def test_drawn_object_sits_on_its_trajectory(motion):
    obj = MovingObject("circle", "red", motion, start=(0.4, 0.6), end=(0.6, 0.5), size=0.2)
    video = synthetic_video(obj, num_frames=8, height=64, width=64)
    for frame, centre in zip(video.frames, video.trajectories[0], strict=True):
        np.testing.assert_allclose(colour_centroid(frame, "red"), centre, atol=0.1)


def test_circular_motion_keeps_its_radius_and_turns_once():
    obj = MovingObject("square", "blue", "circular", start=(0.5, 0.25), end=(0.5, 0.5))
    video = synthetic_video(obj, num_frames=13, height=64, width=64)
    offsets = video.trajectories[0] - 32
    np.testing.assert_allclose(np.linalg.norm(offsets, axis=1), 16, atol=1e-9)
    np.testing.assert_allclose(video.trajectories[0, -1], video.trajectories[0, 0], atol=1e-9)


def test_ease_starts_and_ends_slowly():
    video = synthetic_video(MovingObject(motion="ease"), num_frames=11)
    speed = np.linalg.norm(np.diff(video.trajectories[0], axis=0), axis=1)
    assert speed[0] < speed[5] / 3 and speed[-1] < speed[5] / 3


def test_zigzag_and_bounce_come_back_to_their_path():
    zigzag = synthetic_video(MovingObject(motion="zigzag", turns=2), num_frames=9).trajectories[0]
    np.testing.assert_allclose(zigzag[::2, 1], 32)  # back on the straight path every half zigzag
    np.testing.assert_allclose(zigzag[[1, 5], 1], 32 + 0.15 * 64)  # amplitude 0.15 of the frame, to one side
    np.testing.assert_allclose(zigzag[[3, 7], 1], 32 - 0.15 * 64)  # then to the other
    bounce = synthetic_video(MovingObject(motion="bounce", turns=2), num_frames=9).trajectories[0]
    np.testing.assert_allclose(bounce[[0, 4, 8], 1], 32)  # on the floor between hops
    np.testing.assert_allclose(bounce[[2, 6], 1], 32 - 0.15 * 64)


def test_scale_and_rotation_ground_truth():
    obj = MovingObject("star", "red", "static", start=(0.5, 0.5), size=0.25, scale=(1.0, 2.0), rotation=180)
    video = synthetic_video(obj, num_frames=5, height=64, width=64)
    np.testing.assert_allclose(video.sizes[0], 16 * np.linspace(1, 2, 5))
    np.testing.assert_allclose(video.angles[0], [0, 45, 90, 135, 180])
    red = [(np.abs(frame.astype(int) - COLOURS["red"]).sum(axis=2) < 30).sum() for frame in video.frames]
    assert red[-1] > 3 * red[0]  # area grows with the square of the scale


def test_camera_pan_moves_background_and_objects_together():
    obj = MovingObject("square", "red", "static", start=(0.5, 0.5))
    video = synthetic_video(obj, background="textured", pan=(0.25, 0.0), num_frames=5, height=64, width=64)
    # the camera moves 16 px right over 4 steps: 4 px per frame, so the scene moves 4 px left per frame
    np.testing.assert_allclose(np.diff(video.trajectories[0], axis=0), [[-4, 0]] * 4)
    first, second = video.frames[0].astype(int), video.frames[1].astype(int)
    assert np.abs(second[:, :-4] - first[:, 4:]).mean() < 1.0
    assert np.abs(second - first).mean() > 5.0


def test_deterministic_from_the_seed():
    kwargs = dict(background="textured", num_frames=4)
    assert np.array_equal(synthetic_video(seed=3, **kwargs).frames, synthetic_video(seed=3, **kwargs).frames)
    assert not np.array_equal(synthetic_video(seed=3, **kwargs).frames, synthetic_video(seed=4, **kwargs).frames)
    a, b = random_synthetic_video(7, num_frames=4), random_synthetic_video(7, num_frames=4)
    assert np.array_equal(a.frames, b.frames) and a.prompt == b.prompt


@pytest.mark.parametrize("background", ["plain", "gradient", "textured", "striped", "checkered", "spotted"])
def test_backgrounds_use_their_colours(background):
    video = synthetic_video((), background=background, background_colours=("blue", "yellow"), num_frames=2)
    frame = video.frames[0].astype(int)
    near_blue = np.abs(frame - COLOURS["blue"]).sum(axis=2).min()
    assert near_blue < 40
    if background == "plain":
        assert (frame == COLOURS["blue"]).all()
    else:
        assert frame.std(axis=(0, 1)).max() > 10


def test_prompt_describes_the_clip():
    objects = [
        MovingObject("triangle", "green", "linear", start=(0.2, 0.5), end=(0.8, 0.5)),
        MovingObject("star", (250, 210, 30), "circular", start=(0.5, 0.2), end=(0.5, 0.5), turns=-1),
    ]
    video = synthetic_video(objects, background="gradient", background_colours=("black", "white"), pan=(0, 0.1))
    prompt = video.prompt
    assert "a green triangle moving from left to right" in prompt
    assert "a yellow star circling counterclockwise" in prompt
    assert "black to white gradient background" in prompt
    assert prompt.endswith("the camera panning from top to bottom")
    assert video.trajectories.shape == (2, 16, 2)


def test_shapes_are_drawn_with_their_own_area():
    areas = {}
    for shape in ["circle", "square", "triangle", "star", "diamond", "hexagon"]:
        video = synthetic_video(MovingObject(shape, "red", "static", start=(0.5, 0.5), size=0.5), num_frames=2)
        areas[shape] = (np.abs(video.frames[0].astype(int) - COLOURS["red"]).sum(axis=2) < 30).sum()
    radius = 16
    expected = {  # polygon areas from their circumradius R: n/2 R^2 sin(2 pi / n); the star: 5 R r sin(pi / 5)
        "circle": math.pi * radius**2,
        "square": 2 * radius**2,
        "diamond": 2 * radius**2,
        "triangle": 3 * math.sqrt(3) / 4 * radius**2,
        "hexagon": 3 * math.sqrt(3) / 2 * radius**2,
        "star": 5 * radius * 0.45 * radius * math.sin(math.pi / 5),
    }
    for shape, area in expected.items():
        assert areas[shape] == pytest.approx(area, rel=0.08), shape


def test_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        MovingObject("blob")
    with pytest.raises(ValueError, match="colour"):
        MovingObject(colour="octarine")
    with pytest.raises(ValueError, match="background"):
        synthetic_video(background="stars")
    with pytest.raises(ValueError, match="timing must be one of constant, ease, stop-and-go"):
        MovingObject(timing="jerky")
    with pytest.raises(ValueError, match="body must be one of"):
        MovingObject(body="melting")
    with pytest.raises(ValueError, match="zoom factors must be positive"):
        synthetic_video(zoom=(1.0, 0.0))


def test_camera_ground_truth_carries_still_points_and_the_picture():
    still = MovingObject("circle", "red", "static", start=(0.3, 0.6), size=0.15)
    video = synthetic_video(
        still, background="checkered", pan=(0.2, -0.1), zoom=(1.0, 1.25), num_frames=6, height=64, width=80, seed=2
    )
    first = np.append(video.trajectories[0, 0], 1.0)
    for k in range(6):  # a still object goes where the camera map sends its first position
        np.testing.assert_allclose(video.camera[k] @ first, video.trajectories[0, k], atol=1e-9)
    np.testing.assert_allclose(video.sizes[0], 0.15 * 64 * video.camera[:, 0, 0])  # and grows with the zoom
    np.testing.assert_allclose(video.camera[0], [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(video.camera[-1, 0, 0], 1.25)
    # the last frame is the first warped by the camera map, away from the object and the borders
    warped = cv2.warpAffine(video.frames[0], video.camera[-1], (80, 64), flags=cv2.INTER_LINEAR).astype(int)
    keep = ~cv2.dilate(video.masks[-1].astype(np.uint8), np.ones((7, 7))).astype(bool)
    keep[:8], keep[-8:], keep[:, :8], keep[:, -8:] = False, False, False, False
    assert np.abs(warped - video.frames[-1])[keep].mean() < 6  # resampling a checkerboard twice


def test_timings_change_the_speed_along_the_same_path():
    paths = {
        timing: synthetic_video(MovingObject(timing=timing), num_frames=16).trajectories[0]
        for timing in ("constant", "ease", "stop-and-go")
    }
    for path in paths.values():
        np.testing.assert_allclose(path[[0, -1]], paths["constant"][[0, -1]], atol=1e-9)
    speed = {timing: np.linalg.norm(np.diff(path, axis=0), axis=1) for timing, path in paths.items()}
    np.testing.assert_allclose(speed["constant"], 32 / 15)
    assert speed["ease"][0] < speed["ease"][7] / 3
    stops = speed["stop-and-go"] < 1e-9  # still between t = 0.4 and 0.6: frames 6 to 9
    assert stops.tolist() == [False] * 6 + [True] * 3 + [False] * 6
    assert speed["stop-and-go"][0] == pytest.approx(32 / 15 / 0.8 * 0.5 / 0.5)


def test_non_rigid_bodies_ground_truth():
    t = np.linspace(0, 1, 9)
    wave = 0.3 * np.sin(2 * math.pi * 2 * t)
    centre = dict(motion="static", start=(0.5, 0.5), size=0.4, body_amount=0.3, body_cycles=2)
    pulsing = synthetic_video(MovingObject(body="pulsing", **centre), num_frames=9)
    np.testing.assert_allclose(pulsing.sizes[0], 0.4 * 64 * (1 + wave))
    squashing = synthetic_video(MovingObject("square", body="squashing", **centre), num_frames=9)
    np.testing.assert_allclose(squashing.stretch[0], np.stack([1 + wave, 1 / (1 + wave)], axis=1))
    widths = [np.ptp(np.nonzero(mask.any(axis=0))[0]) for mask in squashing.masks]
    areas = squashing.masks.sum(axis=(1, 2))
    assert widths[1] > 1.4 * widths[3] and np.ptp(areas) < 0.08 * areas.mean()  # wider or taller, same area
    waving = synthetic_video(MovingObject(body="waving", **centre), num_frames=9)
    tips = waving.arm_tips[0]
    np.testing.assert_allclose(np.linalg.norm(tips - waving.trajectories[0], axis=1), 0.9 * 0.4 * 64)
    angles = np.degrees(np.arctan2(*(tips - waving.trajectories[0]).T[::-1]))
    np.testing.assert_allclose(angles, -90 + 180 * wave, atol=1e-9)
    arm = np.array(COLOURS["red"]) * 0.55
    for frame, tip, mask in zip(waving.frames, tips, waving.masks, strict=True):
        x, y = np.round(tip).astype(int)
        assert np.abs(frame[y, x].astype(float) - arm).max() < 3 and mask[y, x]  # the arm's knob is at the tip
    assert np.isnan(pulsing.arm_tips).all() and (pulsing.stretch == 1).all()


def test_masks_cover_the_objects():
    objects = [MovingObject("star", "blue", "linear"), MovingObject("square", "red", "circular", end=(0.5, 0.5))]
    video = synthetic_video(objects, num_frames=4, background_colours=("white", "white"))
    painted = np.abs(video.frames.astype(int) - COLOURS["white"]).sum(axis=-1) > 100
    assert (painted == video.masks).mean() > 0.99 and video.masks.mean() > 0.05


def test_prompt_names_the_camera_speed_and_body():
    obj = MovingObject("circle", "red", "zigzag", timing="stop-and-go", body="waving")
    video = synthetic_video(
        obj,
        background="striped",
        background_colours=("black", "white"),
        pan=(0.2, 0),
        zoom=(1, 0.8),
        camera_timing="ease",
    )
    assert video.prompt == (
        "a red circle zigzagging from left to right, stopping halfway, waving its arm on a striped black and "
        "white background, the camera panning from left to right and zooming out, speeding up then slowing down"
    )
