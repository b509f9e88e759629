"""Side-by-side grids of several videos with a caption over each, for comparing methods at a glance."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from sma.video.frames import as_frames, resize_frames
from sma.video.writing import write_video


def video_grid(
    videos: Sequence[np.ndarray | torch.Tensor],
    captions: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    gap: int = 4,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Tile videos into one video, `columns` per row (all in one row by default).

    Every video is resized to the height of the first one, keeping its aspect ratio (cells are
    as wide as the widest). Shorter videos hold their last frame. Captions are drawn in a
    band above each cell, shortened with an ellipsis when too long.
    """
    if not videos:
        raise ValueError("video_grid needs at least one video")
    if captions is not None and len(captions) != len(videos):
        raise ValueError(f"got {len(videos)} videos but {len(captions)} captions")
    clips = [as_frames(video) for video in videos]
    height = clips[0].shape[1]
    clips = [
        resize_frames(clip, (height, max(1, round(clip.shape[2] * height / clip.shape[1]))), "stretch")
        for clip in clips
    ]
    cell_width = max(clip.shape[2] for clip in clips)
    num_frames = max(len(clip) for clip in clips)
    columns = columns or len(clips)
    rows = -(-len(clips) // columns)
    font_size = max(10, height // 14)
    band = round(font_size * 1.6) if captions is not None else 0
    cell_height = band + height
    grid = np.empty(
        (num_frames, rows * cell_height + (rows - 1) * gap, columns * cell_width + (columns - 1) * gap, 3), np.uint8
    )
    grid[:] = background
    for index, clip in enumerate(clips):
        top = (index // columns) * (cell_height + gap)
        cell_left = (index % columns) * (cell_width + gap)
        left = cell_left + (cell_width - clip.shape[2]) // 2
        held = np.concatenate([clip, np.repeat(clip[-1:], num_frames - len(clip), axis=0)])
        grid[:, top + band : top + cell_height, left : left + clip.shape[2]] = held
        if captions is not None:
            label = _caption(captions[index], cell_width, band, font_size, background)
            grid[:, top : top + band, cell_left : cell_left + cell_width] = label
    return grid


def write_grid(
    path: str | os.PathLike,
    videos: Sequence[np.ndarray | torch.Tensor],
    captions: Sequence[str] | None = None,
    fps: float = 8,
    *,
    overwrite: bool = False,
    **layout,
) -> Path:
    """Write `video_grid(videos, captions, **layout)` to `path` (.mp4, .gif or a png folder)."""
    return write_video(path, video_grid(videos, captions, **layout), fps, overwrite=overwrite)


def _caption(text: str, width: int, height: int, font_size: int, background: tuple[int, int, int]) -> np.ndarray:
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_size)
    shown = text
    while shown and draw.textlength(shown, font=font) > width - 4:
        shown = shown[:-2] + "…"
    ink = (0, 0, 0) if sum(background) > 3 * 127 else (255, 255, 255)
    draw.text((width / 2, height / 2), shown, fill=ink, font=font, anchor="mm")
    return np.asarray(image)
