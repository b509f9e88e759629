import cv2
import numpy as np
import pytest
from handmade_flow import handmade

from sma.metrics import (
    FlowTracker,
    VideoFlow,
    flow_similarity,
    grid_points,
    motion_magnitude,
    video_flow,
    warping_error,
)
from sma.metrics.flow import consistent, sample
from sma.video import VideoError


def textured(size=96, seed=0):
    noise = np.random.default_rng(seed).random((size, size, 3), dtype=np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0) * 255


def translated(image, velocity, frames=8):
    """frames (f, h, w, 3) uint8 of `image` moved by `velocity` (dx, dy) pixels per frame."""
    height, width = image.shape[:2]
    moves = [np.float32([[1, 0, k * velocity[0]], [0, 1, k * velocity[1]]]) for k in range(frames)]
    shifted = [cv2.warpAffine(image, move, (width, height), borderMode=cv2.BORDER_REFLECT) for move in moves]
    return np.stack([np.clip(np.round(frame), 0, 255).astype(np.uint8) for frame in shifted])


def test_sample_is_bilinear_for_any_number_of_points():
    rng = np.random.default_rng(0)
    field = rng.normal(size=(20, 30, 2)).astype(np.float32)
    points = rng.uniform([0, 0], [29, 19], size=(40000, 2)).astype(np.float32)  # more than OpenCV's 32767 map rows
    x0, y0 = np.floor(points).astype(int).T
    x1, y1 = np.minimum(x0 + 1, 29), np.minimum(y0 + 1, 19)
    fx, fy = (points - np.floor(points)).T[..., None]
    expected = (
        field[y0, x0] * (1 - fx) * (1 - fy)
        + field[y0, x1] * fx * (1 - fy)
        + field[y1, x0] * (1 - fx) * fy
        + field[y1, x1] * fx * fy
    )
    steepest = np.abs(np.diff(field, axis=0)).max() + np.abs(np.diff(field, axis=1)).max()
    # OpenCV rounds the fractional position to 1/32 pixel: the value may move by the slope over 1/64
    np.testing.assert_allclose(sample(field, points), expected, atol=steepest / 64 + 1e-5)


def test_forward_backward_check_follows_its_formula():
    forward = np.array([[10.0, 0.0], [10.0, 0.0], [0.3, 0.0], [0.3, 0.0], [0.0, 0.0]])
    backward = np.array([[-10.0, 0.0], [-8.0, 0.0], [0.3, 0.0], [0.5, 0.0], [0.0, 0.71]])
    # |w + w'|^2 against 0.01 (|w|^2 + |w'|^2) + 0.7^2:
    # 0 <= 2.49, 4 > 2.13, 0.36 <= 0.4918, 0.64 > 0.4934, 0.5041 > 0.495
    assert consistent(forward, backward).tolist() == [True, False, True, False, False]


@pytest.mark.parametrize("velocity", [(1.5, -0.75), (-3.25, 2.0)])
def test_flow_tracker_follows_a_translation(velocity):
    frames = translated(textured(), velocity)
    points = grid_points(96, 96, 8)
    tracks = FlowTracker().track(frames, points)
    truth = points[:, None, :] + np.arange(len(frames))[None, :, None] * np.float32(velocity)
    inner = np.all((truth > 12) & (truth < 83), axis=(1, 2))  # away from the mirrored border
    assert inner.sum() >= 16 and tracks.valid[inner].all()
    drift = np.abs(tracks.positions[inner] - truth[inner]).max(axis=(0, 2))
    assert np.all(drift <= 0.08 * np.arange(len(frames)))  # DIS medium works at half size: a little drift per step


def test_tracks_come_back_in_source_pixels_when_the_flow_works_smaller():
    frames = translated(textured(192), (3.0, 1.0), frames=5)
    tracker = FlowTracker(max_side=96)
    points = grid_points(192, 192, 6)
    tracks = tracker.track(frames, points)
    truth = points[:, None, :] + np.arange(5)[None, :, None] * np.float32([3.0, 1.0])
    inner = np.all((truth > 24) & (truth < 168), axis=(1, 2))
    assert inner.sum() >= 9 and tracks.valid[inner].all()
    drift = np.abs(tracks.positions[inner] - truth[inner]).max(axis=(0, 2))
    assert np.all(drift <= 0.2 * np.arange(5))  # 0.1 working pixel per step; a wrong scale would be pixels off
    assert "at most 96 px" in tracker.name


def test_flow_tracker_loses_points_at_a_cut():
    frames = translated(textured(), (1.0, 0.0))
    frames[5:] = translated(textured(seed=1), (1.0, 0.0), frames=3)  # another scene from frame 5 on
    tracks = FlowTracker().track(frames, grid_points(96, 96, 8))
    # unrelated smooth textures still match consistently here and there: most points, not all, are lost
    assert tracks.valid[:, 4].mean() > 0.8 and tracks.valid[:, 5].mean() < 0.35


def test_video_flow_works_at_most_max_side_and_passes_through():
    frames = translated(textured(), (1.0, 0.0), frames=3)[:, :, :64]  # 96 x 64
    flow = video_flow(frames, max_side=48)
    assert flow.frames.shape == (3, 48, 32, 3) and flow.forward.shape == flow.backward.shape == (2, 48, 32, 2)
    assert flow.source_size == (96, 64) and video_flow(flow) is flow
    assert video_flow(frames).frames.shape == frames.shape  # never enlarged
    with pytest.raises(ValueError, match="preset"):
        video_flow(frames, preset="slow")
    with pytest.raises(ValueError, match="2 frames"):
        video_flow(frames[:1])


def pooled_reference(forward, cells):
    """Block means of each flow field (the sizes here are multiples of `cells`)."""
    f, h, w, _ = forward.shape
    return forward.reshape(f, cells, h // cells, cells, w // cells, 2).mean(axis=(2, 4))


def test_flow_similarity_follows_its_formula():
    rng = np.random.default_rng(1)
    reference, generated = rng.normal(size=(2, 3, 16, 24, 2)).astype(np.float32)
    score = flow_similarity(handmade(reference), handmade(generated), cells=4)
    a, b = pooled_reference(reference.astype(np.float64), 4), pooled_reference(generated.astype(np.float64), 4)
    cosine = sum(np.dot(u, v) for u, v in zip(a.reshape(-1, 2), b.reshape(-1, 2), strict=True)) / sum(
        np.hypot(*u) * np.hypot(*v) for u, v in zip(a.reshape(-1, 2), b.reshape(-1, 2), strict=True)
    )
    errors = [np.hypot(*(u - v)) for u, v in zip(a.reshape(-1, 2), b.reshape(-1, 2), strict=True)]
    assert score.cosine == pytest.approx(cosine, rel=1e-5)
    assert score.endpoint_error == pytest.approx(np.mean(errors), rel=1e-5)
    assert score.relative_endpoint_error == pytest.approx(sum(errors) / np.linalg.norm(a, axis=-1).sum(), rel=1e-5)


def test_flow_similarity_is_in_reference_pixels_and_guards_still_videos():
    flow = np.zeros((2, 16, 16, 2), np.float32)
    flow[..., 0] = 1.0
    still = np.zeros_like(flow)
    assert flow_similarity(handmade(flow), handmade(flow)).as_dict() | {"cells": 16} == {
        "cosine": pytest.approx(1.0),
        "endpoint_error": 0.0,
        "relative_endpoint_error": 0.0,
        "cells": 16,
    }
    assert flow_similarity(handmade(flow), handmade(-flow)).cosine == pytest.approx(-1.0)
    assert flow_similarity(handmade(flow, size=(32, 32)), handmade(still)).endpoint_error == pytest.approx(2.0)
    assert flow_similarity(handmade(flow), handmade(still)).relative_endpoint_error == pytest.approx(1.0)
    both_still = flow_similarity(handmade(still), handmade(still))
    assert both_still.cosine == 1.0 and both_still.relative_endpoint_error == 0.0
    assert flow_similarity(handmade(still), handmade(flow)).relative_endpoint_error == float("inf")
    with pytest.raises(VideoError, match="same number of frames"):
        flow_similarity(handmade(flow), handmade(flow[:1]))


def warping_reference(frames, forward, kept):
    """The warping error written out for integer flows: pixel (x, y) of frame k against (x + dx, y + dy) of k+1."""
    frames = frames.astype(np.float64) / 255
    per_step = []
    for k in range(len(forward)):
        total, count = 0.0, 0
        for y in range(frames.shape[1]):
            for x in range(frames.shape[2]):
                dx, dy = forward[k, y, x].astype(int)
                if kept[k, y, x] and 0 <= x + dx < frames.shape[2] and 0 <= y + dy < frames.shape[1]:
                    total += np.mean((frames[k + 1, y + dy, x + dx] - frames[k, y, x]) ** 2)
                    count += 1
        per_step.append(total / count)
    return np.mean(per_step)


def test_warping_error_follows_its_formula():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, size=(3, 10, 12, 3), dtype=np.uint8)
    forward = np.zeros((2, 10, 12, 2), np.float32)
    forward[0, ..., 0], forward[1] = 1.0, (-2.0, 1.0)
    backward = -forward
    backward[:, 3:6, 4:9] = (1.0, 3.0)  # inconsistent: pixels that land here count as occluded
    flow = VideoFlow(frames, forward, backward, (10, 12), 12, "medium")
    ys, xs = np.mgrid[0:10, 0:12]
    kept = np.zeros((2, 10, 12), bool)
    for k in range(2):
        land_x, land_y = xs + forward[k, ..., 0], ys + forward[k, ..., 1]
        inside = (land_x >= 0) & (land_x <= 11) & (land_y >= 0) & (land_y <= 9)
        back = backward[k, np.clip(land_y, 0, 9).astype(int), np.clip(land_x, 0, 11).astype(int)]
        kept[k] = inside & consistent(forward[k], back)
    assert 0.1 < kept.mean() < 0.9  # the check both keeps and drops pixels here
    assert warping_error(flow) == pytest.approx(warping_reference(frames, forward, kept), rel=1e-5)


def test_warping_error_sees_flicker_not_motion():
    frames = translated(textured(), (1.5, -0.75))
    flicker = frames.copy()
    flicker[1::2] = np.clip(flicker[1::2].astype(int) + 25, 0, 255)  # (25 / 255)^2 = 0.0096 where not clipped
    assert warping_error(frames) < 3e-4 and warping_error(frames[::-1]) < 3e-4
    assert warping_error(flicker) > 5e-3


def test_motion_magnitude_is_the_mean_of_the_largest_flows_over_the_diagonal():
    forward = np.zeros((2, 20, 20, 2), np.float32)
    forward[0, :2, :10, 0] = 3.0  # 20 pixels, 5% of 400
    forward[1, :2, :10, 1] = 4.0
    assert motion_magnitude(handmade(forward)) == pytest.approx(3.5 / np.hypot(20, 20))
    assert motion_magnitude(handmade(forward), top=0.1) == pytest.approx(1.75 / np.hypot(20, 20))
    frames = translated(textured(), (2.0, 0.0))
    assert motion_magnitude(frames) == pytest.approx(2.0 / np.hypot(96, 96), rel=0.05)
