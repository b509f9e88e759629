import numpy as np
import pytest

from sma.video import read_video, video_grid, write_grid


def solid(count, height, width, value):
    return np.full((count, height, width, 3), value, np.uint8)


def test_grid_layout_holds_last_frames_and_draws_captions():
    first = solid(4, 32, 32, 50)
    second = solid(2, 16, 32, 200)  # half the height: scaled to 32 x 64
    grid = video_grid([first, second], ["reference", "generated"], gap=4)
    band = grid.shape[1] - 32
    assert band > 0 and grid.shape == (4, band + 32, 64 + 4 + 64, 3)
    cell_first = grid[:, band:, 16:48]
    cell_second = grid[:, band:, 68:132]
    assert (cell_first == 50).all() and (cell_second == 200).all()  # the second video holds its last frame
    assert (grid[:, band:, 64:68] == 255).all()  # the gap
    caption = grid[0, :band]
    assert (caption < 128).any() and (caption == 255).mean() > 0.5  # dark text on white


def test_grid_without_captions_in_two_rows():
    grid = video_grid([solid(2, 8, 8, v) for v in (10, 20, 30)], columns=2, gap=0)
    assert grid.shape == (2, 16, 16, 3)
    assert grid[0, 0, 0, 0] == 10 and grid[0, 0, 8, 0] == 20 and grid[0, 8, 0, 0] == 30


def test_long_captions_are_shortened():
    grid = video_grid([solid(1, 32, 32, 0)], ["a caption far too long to fit over a small video at all"])
    assert grid.shape[2] == 32


def test_write_grid(tmp_path):
    path = write_grid(tmp_path / "grid.gif", [solid(3, 16, 16, 0), solid(3, 16, 16, 255)], ["a", "b"], fps=4)
    assert read_video(path).shape[0] == 3


def test_caption_count_must_match():
    with pytest.raises(ValueError, match="captions"):
        video_grid([solid(1, 8, 8, 0)], ["a", "b"])
