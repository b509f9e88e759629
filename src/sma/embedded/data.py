"""The synthetic world the embedded model learns: one shape moving on a plain background.

A deliberately small world (four shapes, six colours, three backgrounds, four kinds of
motion) so that a model trained for an hour on two CPU cores can render the prompted shape
and colour and move it. Prompts name the appearance and, most of the time, the motion;
without a motion phrase the model must choose a motion itself, which is what motion
transfer then replaces.
"""

from __future__ import annotations

import numpy as np

from sma.video.synthetic import MovingObject, SyntheticVideo, synthetic_video

SHAPES = ("circle", "square", "triangle", "star")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
BACKGROUNDS = ("white", "black", "gray")
MOTIONS = ("linear", "circular", "zigzag", "bounce")
FRAMES, SIZE = 8, 64


def appearance_prompt(colour: str, shape: str, background: str) -> str:
    return f"a {colour} {shape} on a plain {background} background"


def random_object(rng: np.random.Generator, shape: str, colour: str) -> MovingObject:
    motion = str(rng.choice(MOTIONS))
    size = float(rng.uniform(0.3, 0.4))
    if motion == "circular":
        return MovingObject(
            shape, colour, motion, start=(0.5, 0.25), end=(0.5, 0.5), size=size, turns=rng.choice([-1, 1]) * 0.75
        )
    start = rng.uniform(0.25, 0.35, size=2)
    end = 1 - rng.uniform(0.25, 0.35, size=2)
    if motion == "bounce":
        start[1] = end[1] = 0.7
    axis = rng.integers(3)  # horizontal, vertical or diagonal travel
    if axis == 0:
        start[1] = end[1] = rng.uniform(0.35, 0.65) if motion != "bounce" else 0.7
    elif axis == 1 and motion != "bounce":
        start[0] = end[0] = rng.uniform(0.35, 0.65)
    if rng.random() < 0.5:
        start, end = end, start
    return MovingObject(shape, colour, motion, start=tuple(start), end=tuple(end), size=size, amplitude=0.12)


def random_clip(rng: np.random.Generator, motion_phrase_probability: float = 0.7) -> tuple[SyntheticVideo, str]:
    """A clip of the world and its prompt (with the motion phrase at the given rate)."""
    shape, colour = str(rng.choice(SHAPES)), str(rng.choice(COLOURS))
    background = str(rng.choice(BACKGROUNDS))
    clip = synthetic_video(
        random_object(rng, shape, colour),
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        background="plain",
        background_colours=(background, background),
        seed=int(rng.integers(2**31)),
    )
    prompt = clip.prompt if rng.random() < motion_phrase_probability else appearance_prompt(colour, shape, background)
    return clip, prompt


def vocabulary(samples: int = 2000, seed: int = 0) -> list[str]:
    """Every word the prompts of this world use, found by sampling them."""
    rng = np.random.default_rng(seed)
    words = set()
    for _ in range(samples):
        _, prompt = random_clip(rng, motion_phrase_probability=1.0)
        words.update(prompt.replace(",", " ").split())
    for colour in COLOURS:
        for shape in SHAPES:
            words.update(appearance_prompt(colour, shape, "white").split())
    return sorted(words)
