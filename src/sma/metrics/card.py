"""The metric card's cases: what a motion metric should ignore, and what it should notice.

A reference clip is compared with copies that keep its motion (re-encoded as mp4 at another
quality, gif or png frames, halved in size, another appearance, another placement) and with
copies that do not (another path, mirrored left-right, played backwards, frames shuffled).
benchmarks/metric_card.py scores every metric on these; the tests check the targets.

The synthetic scene is the hard case for trackers: two textured squares moving over a still,
smoothly textured background, where compression jitters every still point a little.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sma.video.frames import resize_frames
from sma.video.reading import read_video
from sma.video.synthetic import MovingObject
from sma.video.writing import write_video

KEEPS_MOTION = ("mp4 crf 30", "gif", "png frames", "half size", "new look", "shifted")
CHANGES_MOTION = ("other path", "mirrored", "reversed", "shuffled")
PALETTES = (
    ((90, 110, 90), (170, 160, 140), (200, 40, 30), (250, 220, 60), (20, 40, 160), (120, 220, 250)),
    ((150, 120, 170), (230, 210, 190), (30, 140, 60), (200, 250, 120), (120, 40, 20), (250, 150, 90)),
)


@dataclass(frozen=True)
class Scene:
    """frames (f, h, w, 3) uint8; trajectories (2, f, 2) true square centres in pixels; sizes (2, f) side in pixels."""

    frames: np.ndarray
    trajectories: np.ndarray
    sizes: np.ndarray


def scene_paths(motion: str) -> tuple[MovingObject, MovingObject]:
    """The two squares' paths: `circular` (each once around its own centre, a quarter turn apart) or `zigzag`."""
    if motion == "circular":
        return (
            MovingObject("square", motion="circular", start=(0.43, 0.3), end=(0.3, 0.3)),
            MovingObject("square", motion="circular", start=(0.7, 0.8), end=(0.7, 0.68)),
        )
    if motion == "zigzag":
        return (
            MovingObject("square", motion="zigzag", start=(0.17, 0.3), end=(0.43, 0.3), turns=1.5, amplitude=0.1),
            MovingObject("square", motion="zigzag", start=(0.83, 0.68), end=(0.57, 0.68), turns=1.5, amplitude=0.1),
        )
    raise ValueError(f"motion must be circular or zigzag, not {motion!r}")


def textured_scene(
    motion: str = "circular", *, size: int = 128, num_frames: int = 16, offset: float = 0.0, look: int = 0
) -> Scene:
    """Two textured squares (a fifth of the frame wide) moving along `scene_paths(motion)`, shifted by
    `offset` of the frame right and down, over a still background; `look` (0 or 1) picks the
    textures and colours."""
    t = np.linspace(0.0, 1.0, num_frames)
    trajectories = np.stack([obj.position(t) + offset for obj in scene_paths(motion)]) * size
    side = size // 5
    colours = PALETTES[look]
    background = _texture(size, size / 24, colours[0], colours[1], seed=10 * look)
    squares = [_texture(side, side / 16, *colours[2 + 2 * n : 4 + 2 * n], seed=10 * look + 1 + n) for n in (0, 1)]
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for index in range(num_frames):
        frame = background.copy()
        for square, centre in zip(squares, trajectories[:, index], strict=True):
            move = np.float32([[1, 0, centre[0] - (side - 1) / 2], [0, 1, centre[1] - (side - 1) / 2]])
            patch = cv2.warpAffine(square, move, (size, size), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(np.ones((side, side), np.float32), move, (size, size), flags=cv2.INTER_LINEAR)
            frame = frame * (1 - alpha[..., None]) + patch * alpha[..., None]
        frames[index] = np.round(frame).astype(np.uint8)
    return Scene(frames, trajectories, np.full((2, num_frames), float(side)))


def as_reference(frames: np.ndarray, folder: Path) -> np.ndarray:
    """The clip as a reference is met in practice: written as mp4 at the default quality and read back."""
    return read_video(write_video(Path(folder) / "reference.mp4", frames))


def reencodings(frames: np.ndarray, folder: Path) -> dict[str, np.ndarray]:
    """The same frames as an mp4 at crf 30, a gif, png frames, and at half size read back at full size."""
    folder = Path(folder)
    height, width = frames.shape[1:3]
    return {
        "mp4 crf 30": read_video(write_video(folder / "crf30.mp4", frames, quality=30)),
        "gif": read_video(write_video(folder / "copy.gif", frames)),
        "png frames": read_video(write_video(folder / "frames", frames)),
        "half size": resize_frames(resize_frames(frames, (height // 2, width // 2)), (height, width)),
    }


def recoloured(frames: np.ndarray) -> np.ndarray:
    """Another appearance for a real clip: colours pulled towards blue and brightened."""
    return np.clip(frames * np.float32([0.8, 1.0, 1.2]) + 10, 0, 255).astype(np.uint8)


def translated(frames: np.ndarray, share: float = 0.05) -> np.ndarray:
    """Another placement for a real clip: everything moved right and down by `share` of the frame, edges mirrored."""
    height, width = frames.shape[1:3]
    move = np.float32([[1, 0, share * width], [0, 1, share * height]])
    return np.stack([cv2.warpAffine(f, move, (width, height), borderMode=cv2.BORDER_REFLECT) for f in frames])


def motion_changes(frames: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The same frames mirrored left-right, played backwards, and shuffled."""
    order = np.random.default_rng(seed).permutation(len(frames))
    return {"mirrored": frames[:, :, ::-1].copy(), "reversed": frames[::-1].copy(), "shuffled": frames[order]}


def _texture(size: int, blur: float, first, second, seed: int) -> np.ndarray:
    """(size, size, 3) float32 smooth noise between two colours; `blur` is the Gaussian's sigma in pixels."""
    noise = np.random.default_rng(seed).random((size, size), dtype=np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), blur)
    mix = (smooth - smooth.min()) / max(float(smooth.max() - smooth.min()), 1e-6)
    first, second = np.float32(first), np.float32(second)
    return first + mix[..., None] * (second - first)
