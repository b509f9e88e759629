"""Synthetic motion videos with ground truth: shapes moving along known trajectories.

Tests, the embedded model and the benchmarks use these clips because the true motion of
every object is known exactly. Everything is deterministic from the arguments and `seed`.
Positions are (x, y) fractions of the frame width and height; the ground truth is returned
in pixels, with (0, 0) the centre of the top-left pixel (OpenCV's convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "pink": (240, 130, 180),
    "cyan": (40, 200, 220),
    "brown": (130, 80, 40),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")
MOTIONS = ("static", "linear", "ease", "circular", "zigzag", "bounce")
BACKGROUNDS = ("plain", "gradient", "textured")

Colour = str | tuple[int, int, int]


def rgb(colour: Colour) -> tuple[int, int, int]:
    """A colour name from COLOURS or an (r, g, b) triple of 0..255."""
    if isinstance(colour, str):
        if colour not in COLOURS:
            raise ValueError(f"unknown colour {colour!r}; use one of {', '.join(COLOURS)} or an (r, g, b) triple")
        return COLOURS[colour]
    if len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour):
        raise ValueError(f"a colour is a name or an (r, g, b) triple of 0..255, not {colour!r}")
    return tuple(int(c) for c in colour)


def colour_name(colour: Colour) -> str:
    """The name of a colour, or of the nearest named colour for an (r, g, b) triple."""
    if isinstance(colour, str):
        return colour
    value = np.array(rgb(colour))
    return min(COLOURS, key=lambda name: np.sum((np.array(COLOURS[name]) - value) ** 2))


@dataclass(frozen=True)
class MovingObject:
    """One shape and how it moves over the clip (time t runs from 0 at the first frame to 1 at the last).

    - linear: constant speed from `start` to `end`; ease: the same path, slow-fast-slow (smoothstep).
    - circular: `turns` turns around the centre `end`, starting at `start` (negative turns: counterclockwise).
    - zigzag: from `start` to `end` with `turns` zigzags of `amplitude` across the path.
    - bounce: x from `start` to `end`, hopping `turns` times `amplitude` high off the floor at start's y.
    - static: stays at `start`.
    `size` is the diameter as a fraction of the shorter frame side, multiplied over time from
    `scale[0]` to `scale[1]`; `rotation` is the angle in degrees turned over the clip.
    """

    shape: str = "circle"
    colour: Colour = "red"
    motion: str = "linear"
    start: tuple[float, float] = (0.25, 0.5)
    end: tuple[float, float] = (0.75, 0.5)
    size: float = 0.25
    scale: tuple[float, float] = (1.0, 1.0)
    rotation: float = 0.0
    turns: float = 1.0
    amplitude: float = 0.15

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {self.shape!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, not {self.motion!r}")
        rgb(self.colour)

    def position(self, t: np.ndarray) -> np.ndarray:
        """(len(t), 2) positions as fractions of the frame, before any camera pan."""
        start, end = np.array(self.start, float), np.array(self.end, float)
        t = np.asarray(t, float)[:, None]
        if self.motion == "static":
            return np.repeat(start[None], len(t), axis=0)
        if self.motion == "linear":
            return start + t * (end - start)
        if self.motion == "ease":
            return start + (3 * t**2 - 2 * t**3) * (end - start)
        if self.motion == "circular":
            radius = np.linalg.norm(start - end)
            angle = math.atan2(start[1] - end[1], start[0] - end[0]) + 2 * math.pi * self.turns * t[:, 0]
            return end + radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        if self.motion == "zigzag":
            direction = end - start
            across = np.array([-direction[1], direction[0]]) / max(np.linalg.norm(direction), 1e-9)
            wave = 2 / math.pi * np.arcsin(np.sin(2 * math.pi * self.turns * t))  # triangle wave 0, 1, 0, -1, 0
            return start + t * direction + self.amplitude * wave * across
        hop = self.amplitude * np.abs(np.sin(math.pi * self.turns * t[:, 0]))  # bounce
        return np.stack([start[0] + t[:, 0] * (end[0] - start[0]), start[1] - hop], axis=1)


@dataclass(frozen=True)
class SyntheticVideo:
    """Frames (f, h, w, 3) uint8 and the ground truth of every object, in pixels.

    trajectories: (objects, f, 2) centre (x, y); sizes: (objects, f) diameter; angles:
    (objects, f) degrees; prompt: a sentence that describes the clip.
    """

    frames: np.ndarray
    trajectories: np.ndarray
    sizes: np.ndarray
    angles: np.ndarray
    prompt: str
    fps: float
    objects: tuple[MovingObject, ...]


def synthetic_video(
    objects: MovingObject | Sequence[MovingObject] = MovingObject(),
    *,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    background: str = "plain",
    background_colours: tuple[Colour, Colour] = ("white", "gray"),
    pan: tuple[float, float] = (0.0, 0.0),
    fps: float = 8,
    seed: int = 0,
) -> SyntheticVideo:
    """Render `objects` (drawn in order, later on top) over a `background`: plain (the first colour),
    gradient (first to second colour, diagonally) or textured (smooth noise between the two).

    `pan` = (dx, dy) moves the camera by that fraction of the frame over the clip: the
    background and every object shift the opposite way, and the ground truth includes it.
    """
    if isinstance(objects, MovingObject):
        objects = (objects,)
    objects = tuple(objects)
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, not {background!r}")
    if num_frames < 2:
        raise ValueError(f"a video needs at least 2 frames, not {num_frames}")
    t = np.linspace(0.0, 1.0, num_frames)
    camera = np.outer(t, pan) * (width, height)  # camera offset in pixels at each frame
    canvas = _background_canvas(background, background_colours, height, width, pan, seed)
    margin = np.array([canvas.shape[1] - width, canvas.shape[0] - height]) * (np.array(pan) < 0)

    unit = min(height, width)
    trajectories = (
        np.stack([o.position(t) * (width, height) - camera for o in objects])
        if objects
        else np.zeros((0, num_frames, 2))
    )
    sizes = np.array([o.size * unit * np.linspace(*o.scale, num_frames) for o in objects]).reshape(
        len(objects), num_frames
    )
    angles = np.array([o.rotation * t for o in objects]).reshape(len(objects), num_frames)

    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for index in range(num_frames):
        shift = camera[index] + margin
        window = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
        frame = cv2.warpAffine(canvas, window, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        for number, obj in enumerate(objects):
            outline = _outline(obj.shape, trajectories[number, index], sizes[number, index] / 2, angles[number, index])
            cv2.fillPoly(frame, [np.round(outline * 16).astype(np.int32)], rgb(obj.colour), cv2.LINE_AA, shift=4)
        frames[index] = frame
    return SyntheticVideo(
        frames, trajectories, sizes, angles, describe(objects, background, background_colours, pan), fps, objects
    )


def random_synthetic_video(
    seed: int, *, num_frames: int = 16, height: int = 64, width: int = 64, fps: float = 8
) -> SyntheticVideo:
    """One object with a random shape, colour, motion and background, all drawn from `seed`."""
    rng = np.random.default_rng(seed)
    colours = list(COLOURS)
    colour, back, second = rng.choice(colours, size=3, replace=False)
    start = rng.uniform(0.25, 0.4, size=2)
    end = 1 - rng.uniform(0.25, 0.4, size=2)
    if rng.random() < 0.5:
        start, end = end, start
    obj = MovingObject(
        shape=str(rng.choice(SHAPES)),
        colour=str(colour),
        motion=str(rng.choice(MOTIONS[1:])),
        start=tuple(start),
        end=tuple(end),
        size=float(rng.uniform(0.2, 0.3)),
        rotation=float(rng.choice([0.0, 90.0])),
    )
    if obj.motion == "circular":
        obj = MovingObject(**{**obj.__dict__, "end": (0.5, 0.5), "start": (0.5, 0.25)})
    return synthetic_video(
        obj,
        num_frames=num_frames,
        height=height,
        width=width,
        background=str(rng.choice(BACKGROUNDS)),
        background_colours=(str(back), str(second)),
        fps=fps,
        seed=seed,
    )


def describe(
    objects: Sequence[MovingObject], background: str, colours: tuple[Colour, Colour], pan: tuple[float, float]
) -> str:
    """A prompt in plain words: what moves, how, on what, and where the camera goes."""
    parts = [f"a {colour_name(o.colour)} {o.shape} {_motion_phrase(o)}" for o in objects] or ["an empty scene"]
    first, second = colour_name(colours[0]), colour_name(colours[1])
    ground = {
        "plain": f"a plain {first} background",
        "gradient": f"a {first} to {second} gradient background",
        "textured": f"a textured {first} and {second} background",
    }[background]
    sentence = f"{' and '.join(parts)} on {ground}"
    if any(pan):
        sentence += f", the camera panning {_direction(np.array(pan))}"
    return sentence


def _motion_phrase(obj: MovingObject) -> str:
    travel = np.array(obj.end) - np.array(obj.start)
    phrase = {
        "static": "standing still",
        "linear": f"moving {_direction(travel)}",
        "ease": f"gliding {_direction(travel)}, speeding up then slowing down",
        "circular": f"circling {'clockwise' if obj.turns > 0 else 'counterclockwise'}",
        "zigzag": f"zigzagging {_direction(travel)}",
        "bounce": f"bouncing {_direction(travel * (1, 0))}",
    }[obj.motion]
    if obj.rotation:
        phrase += ", spinning"
    if obj.scale[1] != obj.scale[0]:
        phrase += ", growing" if obj.scale[1] > obj.scale[0] else ", shrinking"
    return phrase


def _direction(travel: np.ndarray) -> str:
    dx, dy = travel
    horizontal = "to the right" if dx > 0 else "to the left"
    vertical = "down" if dy > 0 else "up"
    if abs(dx) > 2 * abs(dy):
        return "from left to right" if dx > 0 else "from right to left"
    if abs(dy) > 2 * abs(dx):
        return "from top to bottom" if dy > 0 else "from bottom to top"
    return f"diagonally {vertical} {horizontal}"


def _outline(shape: str, centre: np.ndarray, radius: float, degrees: float) -> np.ndarray:
    """Polygon vertices (n, 2) of a shape of circumradius `radius`, turned by `degrees` (clockwise on screen)."""
    if shape == "circle":
        angles, radii = np.linspace(0, 2 * math.pi, 64, endpoint=False), np.ones(64)
    elif shape == "square":
        angles, radii = np.arange(4) * math.pi / 2 + math.pi / 4, np.ones(4)
    elif shape == "diamond":
        angles, radii = np.arange(4) * math.pi / 2, np.ones(4)
    elif shape == "triangle":
        angles, radii = np.arange(3) * 2 * math.pi / 3 - math.pi / 2, np.ones(3)
    elif shape == "hexagon":
        angles, radii = np.arange(6) * math.pi / 3, np.ones(6)
    else:  # star: five points, inner radius 0.45
        angles, radii = np.arange(10) * math.pi / 5 - math.pi / 2, np.tile([1.0, 0.45], 5)
    angles = angles + math.radians(degrees)
    return centre + radius * radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _background_canvas(
    kind: str, colours: tuple[Colour, Colour], height: int, width: int, pan: tuple[float, float], seed: int
) -> np.ndarray:
    """The world behind the camera: the frame plus the ground the camera pans over."""
    canvas_width = width + math.ceil(abs(pan[0]) * width) + 1
    canvas_height = height + math.ceil(abs(pan[1]) * height) + 1
    first, second = np.array(rgb(colours[0]), np.float32), np.array(rgb(colours[1]), np.float32)
    if kind == "plain":
        mix = np.zeros((canvas_height, canvas_width), np.float32)
    elif kind == "gradient":
        y, x = np.mgrid[0:canvas_height, 0:canvas_width].astype(np.float32)
        mix = (x / canvas_width + y / canvas_height) / 2
    else:
        noise = np.random.default_rng(seed).random((canvas_height, canvas_width), dtype=np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=max(1.0, min(height, width) / 40))
        mix = (smooth - smooth.min()) / max(float(smooth.max() - smooth.min()), 1e-6)
    canvas = first + mix[..., None] * (second - first)
    return np.round(canvas).astype(np.uint8)
