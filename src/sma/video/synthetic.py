"""Synthetic motion videos with ground truth: shapes moving along known trajectories.

Tests, the embedded model and the benchmarks use these clips because the true motion of
every object is known exactly: centres, sizes, angles, non-rigid stretch, the tip of an
articulated arm, the camera (pan and zoom) and which pixels objects cover. Everything is
deterministic from the arguments and `seed`. Positions are (x, y) fractions of the frame
width and height as the first frame's camera sees the world; the ground truth is returned in
pixels, with (0, 0) the centre of the top-left pixel (OpenCV's convention).
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
TIMINGS = ("constant", "ease", "stop-and-go")
BODIES = ("rigid", "pulsing", "squashing", "waving")
BACKGROUNDS = ("plain", "gradient", "textured", "striped", "checkered", "spotted")
ARM_SHADE = 0.55  # an arm is drawn in its body's colour times this: another colour to colour masks

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

    `timing` sets the speed along the path: constant, ease (slow-fast-slow) or stop-and-go
    (still over the middle fifth of the clip). `body` makes the shape non-rigid, `body_cycles`
    times over the clip by `body_amount`: pulsing (size times 1 + a sin), squashing (width
    times 1 + a sin, height divided by it) or waving (an arm, in a darker shade, swinging
    a * 180 degrees either side of upright).
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
    timing: str = "constant"
    body: str = "rigid"
    body_amount: float = 0.25
    body_cycles: float = 2.0

    def __post_init__(self):
        for value, choices, name in (
            (self.shape, SHAPES, "shape"),
            (self.motion, MOTIONS, "motion"),
            (self.timing, TIMINGS, "timing"),
            (self.body, BODIES, "body"),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        rgb(self.colour)

    def position(self, t: np.ndarray) -> np.ndarray:
        """(len(t), 2) positions as fractions of the frame, as the first frame's camera sees the world."""
        start, end = np.array(self.start, float), np.array(self.end, float)
        t = progress(self.timing, np.asarray(t, float))[:, None]
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

    def wobble(self, t: np.ndarray) -> np.ndarray:
        """(len(t),) the body's oscillation a sin(2 pi cycles t); zero for a rigid body."""
        if self.body == "rigid":
            return np.zeros(len(t))
        return self.body_amount * np.sin(2 * math.pi * self.body_cycles * np.asarray(t, float))


def progress(timing: str, t: np.ndarray) -> np.ndarray:
    """Share of the way travelled at clip time t in [0, 1] under a `timing` of TIMINGS."""
    if timing == "constant":
        return t
    if timing == "ease":
        return 3 * t**2 - 2 * t**3
    if timing == "stop-and-go":  # half the way over [0, 0.4], still over [0.4, 0.6], the rest over [0.6, 1]
        return np.where(t < 0.4, t / 0.8, np.where(t < 0.6, 0.5, 0.5 + (t - 0.6) / 0.8))
    raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, not {timing!r}")


@dataclass(frozen=True)
class SyntheticVideo:
    """Frames (f, h, w, 3) uint8 and the ground truth of every object and of the camera, in pixels.

    trajectories: (objects, f, 2) centre (x, y); sizes: (objects, f) diameter (before stretch);
    angles: (objects, f) degrees; stretch: (objects, f, 2) width and height factors of a
    squashing body (1 otherwise); arm_tips: (objects, f, 2) tip of a waving body's arm (NaN
    without one); camera: (f, 2, 3) affine maps carrying a still point's position in the first
    frame to its position in frame k; masks: (f, h, w) bool, pixels an object covers; prompt:
    a sentence that describes the clip.
    """

    frames: np.ndarray
    trajectories: np.ndarray
    sizes: np.ndarray
    angles: np.ndarray
    prompt: str
    fps: float
    objects: tuple[MovingObject, ...]
    stretch: np.ndarray
    arm_tips: np.ndarray
    camera: np.ndarray
    masks: np.ndarray


def synthetic_video(
    objects: MovingObject | Sequence[MovingObject] = MovingObject(),
    *,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    background: str = "plain",
    background_colours: tuple[Colour, Colour] = ("white", "gray"),
    pan: tuple[float, float] = (0.0, 0.0),
    zoom: tuple[float, float] = (1.0, 1.0),
    camera_timing: str = "constant",
    fps: float = 8,
    seed: int = 0,
) -> SyntheticVideo:
    """Render `objects` (drawn in order, later on top) over a `background` of BACKGROUNDS: plain (the
    first colour), gradient (first to second colour, diagonally), textured (smooth noise between
    the two), striped, checkered or spotted (seeded stripes, checks or round spots).

    The camera moves by `pan` = (dx, dy) fractions of the frame over the clip and zooms by
    `zoom[0]` at the first frame to `zoom[1]` at the last (about the frame's centre, at a
    constant rate), following `camera_timing` (TIMINGS); background and objects move with it,
    and the ground truth includes it.
    """
    if isinstance(objects, MovingObject):
        objects = (objects,)
    objects = tuple(objects)
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, not {background!r}")
    if num_frames < 2:
        raise ValueError(f"a video needs at least 2 frames, not {num_frames}")
    if min(zoom) <= 0:
        raise ValueError(f"zoom factors must be positive, not {zoom!r}")
    t = np.linspace(0.0, 1.0, num_frames)
    camera = _Camera.moving(progress(camera_timing, t), pan, zoom, height, width)
    paths = _Paths.of(objects, t, camera, height, width)
    canvas, origin = _background_canvas(background, background_colours, height, width, camera, seed)
    frames, masks = _render(objects, paths, camera, canvas, origin, height, width)
    prompt = describe(objects, background, background_colours, pan, zoom, camera_timing)
    return SyntheticVideo(
        frames,
        paths.trajectories,
        paths.sizes,
        paths.angles,
        prompt,
        fps,
        objects,
        paths.stretch,
        paths.arm_tips,
        camera.maps(),
        masks,
    )


@dataclass(frozen=True)
class _Camera:
    """Where the camera has moved at each frame (`offsets` (f, 2), world pixels) and its zoom (`zooms` (f,)),
    about the frame's `centre`."""

    offsets: np.ndarray
    zooms: np.ndarray
    centre: np.ndarray

    @classmethod
    def moving(cls, travelled: np.ndarray, pan, zoom, height: int, width: int) -> _Camera:
        """Panning by `pan` (fractions of the frame) and zooming from `zoom[0]` to `zoom[1]` at a constant rate,
        `travelled` (f,) the share of the way done at each frame."""
        offsets = np.outer(travelled, pan) * (width, height)
        zooms = zoom[0] * (zoom[1] / zoom[0]) ** travelled
        return cls(offsets, zooms, np.array([(width - 1) / 2, (height - 1) / 2]))

    def view(self, points: np.ndarray) -> np.ndarray:
        """World pixels (..., f, 2) to frame pixels: q = z (p - c - centre) + centre."""
        return self.zooms[:, None] * (points - self.offsets - self.centre) + self.centre

    def maps(self) -> np.ndarray:
        """(f, 2, 3) affine maps carrying a still point's position in the first frame to its position in frame k."""
        scales = self.zooms / self.zooms[0]
        shifts = self.centre - scales[:, None] * self.centre + self.zooms[:, None] * (self.offsets[0] - self.offsets)
        maps = np.zeros((len(self.zooms), 2, 3))
        maps[:, 0, 0] = maps[:, 1, 1] = scales
        maps[:, :, 2] = shifts
        return maps

    def window(self, index: int, origin: np.ndarray) -> np.ndarray:
        """The map from frame `index`'s pixels to the pixels of a canvas whose top-left pixel is at `origin`."""
        inverse = 1 / self.zooms[index]
        corner = self.offsets[index] + self.centre - self.centre * inverse - origin  # under frame pixel (0, 0)
        return np.float32([[inverse, 0, corner[0]], [0, inverse, corner[1]]])


@dataclass(frozen=True)
class _Paths:
    """The ground truth of each object at each frame, in frame pixels (see `SyntheticVideo`)."""

    trajectories: np.ndarray
    sizes: np.ndarray
    angles: np.ndarray
    stretch: np.ndarray
    arm_tips: np.ndarray

    @classmethod
    def of(cls, objects: tuple[MovingObject, ...], t: np.ndarray, camera: _Camera, height: int, width: int) -> _Paths:
        count, num_frames = len(objects), len(t)
        trajectories = (
            np.stack([camera.view(o.position(t) * (width, height)) for o in objects])
            if objects
            else np.zeros((0, num_frames, 2))
        )
        wobbles = np.array([o.wobble(t) for o in objects]).reshape(count, num_frames)
        bodies = np.array([o.body for o in objects]).reshape(count, 1)
        unit = min(height, width)
        sizes = np.array([o.size * unit * np.linspace(*o.scale, num_frames) for o in objects])
        sizes = sizes.reshape(count, num_frames) * camera.zooms * np.where(bodies == "pulsing", 1 + wobbles, 1.0)
        angles = np.array([o.rotation * t for o in objects]).reshape(count, num_frames)
        squash = np.where(bodies == "squashing", 1 + wobbles, 1.0)
        arm_angles = np.radians(angles - 90 + 180 * wobbles)
        arm_tips = trajectories + 0.9 * sizes[..., None] * np.stack([np.cos(arm_angles), np.sin(arm_angles)], axis=-1)
        arm_tips[np.broadcast_to(bodies != "waving", (count, num_frames))] = np.nan
        return cls(trajectories, sizes, angles, np.stack([squash, 1 / squash], axis=-1), arm_tips)


def _render(
    objects: tuple[MovingObject, ...],
    paths: _Paths,
    camera: _Camera,
    canvas: np.ndarray,
    origin: np.ndarray,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (f, h, w, 3) uint8: the camera's view of the background canvas, the objects drawn on it in order;
    and masks (f, h, w) bool of the pixels they cover."""
    num_frames = len(camera.zooms)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.zeros((num_frames, height, width), np.uint8)
    for index in range(num_frames):
        window = camera.window(index, origin)
        frame = cv2.warpAffine(canvas, window, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        for number, obj in enumerate(objects):
            parts = _parts(
                obj,
                paths.trajectories[number, index],
                paths.sizes[number, index] / 2,
                paths.angles[number, index],
                paths.stretch[number, index],
                paths.arm_tips[number, index],
            )
            for outline, shade in parts:
                colour = tuple(round(c * shade) for c in rgb(obj.colour))
                _fill(frame, outline, colour)
                _fill(masks[index], outline, 255)
        frames[index] = frame
    return frames, masks > 127


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
    objects: Sequence[MovingObject],
    background: str,
    colours: tuple[Colour, Colour],
    pan: tuple[float, float],
    zoom: tuple[float, float] = (1.0, 1.0),
    camera_timing: str = "constant",
) -> str:
    """A prompt in plain words: what moves, how, on what, and where the camera goes."""
    parts = [f"a {colour_name(o.colour)} {o.shape} {_motion_phrase(o)}" for o in objects] or ["an empty scene"]
    sentence = f"{' and '.join(parts)} on {ground_phrase(background, colours)}"
    camera = []
    if any(pan):
        camera.append(f"panning {_direction(np.array(pan))}")
    if zoom[1] != zoom[0]:
        camera.append("zooming in" if zoom[1] > zoom[0] else "zooming out")
    if camera:
        sentence += f", the camera {' and '.join(camera)}{_timing_phrase(camera_timing)}"
    return sentence


def ground_phrase(background: str, colours: tuple[Colour, Colour]) -> str:
    """How a prompt names a background of BACKGROUNDS in `colours`: "a plain white background"."""
    first, second = colour_name(colours[0]), colour_name(colours[1])
    if background == "plain":
        return f"a plain {first} background"
    if background == "gradient":
        return f"a {first} to {second} gradient background"
    return f"a {background} {first} and {second} background"


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
    if obj.motion != "static":
        phrase += _timing_phrase(obj.timing)
    if obj.rotation:
        phrase += ", spinning"
    if obj.scale[1] != obj.scale[0]:
        phrase += ", growing" if obj.scale[1] > obj.scale[0] else ", shrinking"
    phrase += {
        "rigid": "",
        "pulsing": ", pulsing",
        "squashing": ", squashing and stretching",
        "waving": ", waving its arm",
    }[obj.body]
    return phrase


def _timing_phrase(timing: str) -> str:
    return {"constant": "", "ease": ", speeding up then slowing down", "stop-and-go": ", stopping halfway"}[timing]


def _direction(travel: np.ndarray) -> str:
    dx, dy = travel
    horizontal = "to the right" if dx > 0 else "to the left"
    vertical = "down" if dy > 0 else "up"
    if abs(dx) > 2 * abs(dy):
        return "from left to right" if dx > 0 else "from right to left"
    if abs(dy) > 2 * abs(dx):
        return "from top to bottom" if dy > 0 else "from bottom to top"
    return f"diagonally {vertical} {horizontal}"


def _outline(shape: str, centre: np.ndarray, radius: float, degrees: float, stretch=(1.0, 1.0)) -> np.ndarray:
    """Polygon vertices (n, 2) of a shape of circumradius `radius`, turned by `degrees` (clockwise on
    screen), then stretched along the frame's axes by `stretch` (width, height factors)."""
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
    return centre + radius * radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1) * stretch


def _parts(obj: MovingObject, centre, radius, degrees, stretch, arm_tip) -> list[tuple[np.ndarray, float]]:
    """(outline, colour shade) of what draws an object: its arm (a bar and a knob, darker) under its body."""
    parts = []
    if obj.body == "waving":
        along = (arm_tip - centre) / max(float(np.linalg.norm(arm_tip - centre)), 1e-9)
        across = np.array([-along[1], along[0]]) * 0.18 * radius
        bar = np.stack([centre + across, arm_tip + across, arm_tip - across, centre - across])
        parts += [(bar, ARM_SHADE), (_outline("circle", arm_tip, 0.3 * radius, 0.0), ARM_SHADE)]
    return [*parts, (_outline(obj.shape, centre, radius, degrees, stretch), 1.0)]


def _fill(image: np.ndarray, outline: np.ndarray, colour) -> None:
    cv2.fillPoly(image, [np.round(outline * 16).astype(np.int32)], colour, cv2.LINE_AA, shift=4)


def _background_canvas(
    kind: str,
    colours: tuple[Colour, Colour],
    height: int,
    width: int,
    camera: _Camera,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The world behind the camera: every pixel any frame sees, and the world position (x, y) of its
    top-left pixel. Patterns are laid out in world pixels, scaled to the shorter frame side."""
    corners = np.array([[-1, -1], [width, -1], [-1, height], [width, height]], np.float64)
    centre = camera.centre
    seen = (corners[None] - centre) / camera.zooms[:, None, None] + centre + camera.offsets[:, None]  # (f, 4, 2)
    origin = np.floor(seen.reshape(-1, 2).min(axis=0)) - 1
    canvas_width, canvas_height = (np.ceil(seen.reshape(-1, 2).max(axis=0)) + 2 - origin).astype(int)
    first, second = np.array(rgb(colours[0]), np.float32), np.array(rgb(colours[1]), np.float32)
    unit = min(height, width)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:canvas_height, 0:canvas_width].astype(np.float32)
    x, y = x + origin[0], y + origin[1]
    if kind == "plain":
        mix = np.zeros((canvas_height, canvas_width), np.float32)
    elif kind == "gradient":
        mix = ((x - origin[0]) / canvas_width + (y - origin[1]) / canvas_height) / 2
    elif kind == "textured":
        noise = rng.random((canvas_height, canvas_width), dtype=np.float32)
        mix = cv2.GaussianBlur(noise, (0, 0), sigmaX=max(1.0, unit / 40))
    elif kind in ("striped", "checkered"):
        angle, period, phase = rng.uniform(0, math.pi), unit * rng.uniform(0.15, 0.3), rng.uniform(0, 2 * math.pi)
        along = (x * math.cos(angle) + y * math.sin(angle)) * 2 * math.pi / period + phase
        wave = np.sin(along)
        if kind == "checkered":
            wave = wave * np.sin((-x * math.sin(angle) + y * math.cos(angle)) * 2 * math.pi / period + phase)
        mix = np.tanh(3 * wave)
    else:  # spotted: round spots of random size, about 12 per frame area, softened by a pixel
        mix = np.zeros((canvas_height, canvas_width), np.float32)
        for _ in range(max(1, round(12 * canvas_width * canvas_height / unit**2))):
            spot = rng.uniform([0, 0], [canvas_width, canvas_height])
            cv2.circle(
                mix,
                np.round(spot * 16).astype(int),
                round(16 * unit * rng.uniform(0.04, 0.09)),
                1.0,
                -1,
                cv2.LINE_AA,
                4,
            )
        mix = cv2.GaussianBlur(mix, (0, 0), sigmaX=1.0)
    mix = (mix - mix.min()) / max(float(mix.max() - mix.min()), 1e-6) if kind != "plain" else mix
    canvas = first + mix[..., None] * (second - first)
    return np.round(canvas).astype(np.uint8), origin
