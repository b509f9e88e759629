import numpy as np
import pytest

from sma.metrics.appearance import appearance_accuracy, colour_fraction, colour_mask, shape_of
from sma.video import MovingObject, synthetic_video
from sma.video.synthetic import rgb


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "star"])
def test_shapes_are_recognised_at_any_size_and_angle(shape):
    rng = np.random.default_rng(0)
    results = []
    for _ in range(6):
        obj = MovingObject(shape, "blue", "linear", size=rng.uniform(0.3, 0.4), rotation=float(rng.uniform(0, 90)))
        clip = synthetic_video(obj, num_frames=8, height=64, width=64)
        results += [shape_of(colour_mask(frame, rgb("blue"))) for frame in clip.frames]
    assert np.mean([result == shape for result in results]) >= 0.95


def test_colour_fraction_and_accuracy():
    clip = synthetic_video(MovingObject("square", "red", size=0.5), num_frames=4, height=40, width=40)
    frame_area = 40 * 40
    side = 0.5 * 40 / np.sqrt(2)  # `size` is the diameter of the circle around the square
    assert colour_fraction(clip.frames, rgb("red")) == pytest.approx(side**2 / frame_area, rel=0.15)
    assert colour_fraction(clip.frames, rgb("blue")) == 0.0
    assert appearance_accuracy(clip.frames, rgb("red"), "square") == 1.0
    assert appearance_accuracy(clip.frames, rgb("red"), "circle") == 0.0
    assert appearance_accuracy(clip.frames, rgb("blue"), "square") == 0.0
    assert shape_of(np.zeros((10, 10), bool)) is None
