"""What the embedded models' worlds show, as data: their shapes, colours and motions, the size of their clips, the
prompts that describe a scene, and the scenes `sma demo`, `sma ui` and the suites of `sma benchmark` transfer.

`sma.embedded.world` samples the worlds from these; `sma.evaluation` scores transfers against them. Nothing here
loads a model.
"""

from __future__ import annotations

from sma.evaluation import Target
from sma.video.synthetic import MovingObject, ground_phrase

SHAPES = ("circle", "square", "triangle", "star")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
BACKGROUNDS = ("white", "black", "gray")
MOTIONS = ("linear", "circular", "zigzag", "bounce")
FRAMES, SIZE = 8, 64  # the simple world's clips
HARD_FRAMES = 16
WORLD_SIZES = {"simple": (FRAMES, SIZE), "hard": (HARD_FRAMES, SIZE)}  # frames, side of each world's clips


def appearance_prompt(colour: str, shape: str, background: str) -> str:
    return scene_prompt([(colour, shape)], "plain", (background, background))


def scene_prompt(objects: list[tuple[str, str]], background: str, colours: tuple[str, str]) -> str:
    """What a scene looks like, without its motion: "a red circle and a blue star on a striped white and gray
    background" (`objects`: (colour, shape) pairs; `background`: one of sma.video.synthetic.BACKGROUNDS)."""
    return f"{' and '.join(f'a {colour} {shape}' for colour, shape in objects)} on {ground_phrase(background, colours)}"


def target(objects: list[tuple[str, str]], background: str, colours: tuple[str, str]) -> Target:
    """A target that asks for synthetic shapes: its prompt, and what the output is checked for."""
    return Target(scene_prompt(objects, background, colours), tuple(objects), background)


# the references of the simple world that `sma ui` offers (the demo's first), each a red circle moving
REFERENCE_MOTIONS = {
    "zigzag": MovingObject("circle", "red", "zigzag", start=(0.25, 0.5), end=(0.75, 0.5), size=0.35, turns=1.0),
    "circle": MovingObject("circle", "red", "circular", start=(0.5, 0.25), end=(0.5, 0.5), size=0.35, turns=0.75),
    "diagonal": MovingObject("circle", "red", "linear", start=(0.25, 0.25), end=(0.75, 0.75), size=0.35),
}
EXAMPLE_TARGET = appearance_prompt("blue", "square", "white")  # the page's target for each of them

# `sma demo`'s reference scene (`synthetic_video` arguments) and targets in each world
DEMO_SCENES = {
    "simple": {"objects": REFERENCE_MOTIONS["zigzag"], "background_colours": ("white", "white")},
    "hard": {
        "objects": MovingObject("circle", "red", "zigzag", start=(0.3, 0.5), end=(0.6, 0.5), size=0.28, amplitude=0.12),
        "background": "textured",
        "background_colours": ("white", "black"),
        "pan": (0.22, 0.0),
        "seed": 1,
    },
}
DEMO_TARGETS = {
    "simple": (  # on the reference's ground
        target([("blue", "square")], "plain", ("white", "white")),
        target([("yellow", "star")], "plain", ("white", "white")),
    ),
    "hard": (
        target([("blue", "square")], "checkered", ("gray", "white")),
        target([("yellow", "star")], "spotted", ("black", "gray")),
    ),
}
