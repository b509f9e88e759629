"""The synthetic worlds the embedded model learns, and how transfers in them are set up and sampled.

The simple world (the shipped model's: four shapes, six colours, three plain backgrounds,
four kinds of motion, 8 frames) is small enough that a model trained for an hour on two CPU
cores renders the prompted shape and colour and moves it. The hard world (`HardWorld`, every
setting in one place) adds what the SMA paper says plain objectives miss: textured
backgrounds under a moving camera (pan, zoom), two objects moving differently, non-rigid
bodies, changes of speed, over 16 frames. Prompts name the appearance and, most of the time,
the motion; without a motion phrase the model must choose a motion itself, which is what
motion transfer then replaces. The worlds' words, prompts and the scenes transferred are data in
`sma.embedded.scenes`; `sma demo`, `sma ui` and the model's training set up and sample their runs here
(`sma.evaluation` scores them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sma.backbones.text_to_video import TextToVideoModel
from sma.config import TransferConfig
from sma.embedded.scenes import (
    BACKGROUNDS,
    COLOURS,
    DEMO_TARGETS,
    FRAMES,
    HARD_FRAMES,
    MOTIONS,
    REFERENCE_MOTIONS,
    SHAPES,
    SIZE,
    appearance_prompt,
    scene_prompt,
)
from sma.recipes import load_config
from sma.sampling import guided, make_scheduler, sample
from sma.video.synthetic import MovingObject, SyntheticVideo, ground_phrase, synthetic_video


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


def vocabulary(samples: int = 2000, seed: int = 0, world: str = "simple") -> list[str]:
    """Every word the prompts of a world use, found by sampling them (once per process: it renders the clips)."""
    return list(_vocabulary(samples, seed, world))


@functools.lru_cache(maxsize=4)
def _vocabulary(samples: int, seed: int, world: str) -> tuple[str, ...]:
    rng = np.random.default_rng(seed)
    words = set()
    for _ in range(samples):
        _, prompt = WORLDS[world].random_clip(rng, motion_phrase_probability=1.0)
        words.update(prompt.replace(",", " ").split())
    for colour in COLOURS:
        for shape in SHAPES:
            words.update(appearance_prompt(colour, shape, "white").split())
    for background in WORLDS[world].backgrounds:
        words.update(ground_phrase(background, ("white", "gray")).split())
    return tuple(sorted(words))


@dataclass(frozen=True)
class HardWorld:
    """Every setting of the hard world: the shares are probabilities per clip (or per object)."""

    frames: int = HARD_FRAMES
    size: int = SIZE
    object_sizes: tuple[float, float] = (0.22, 0.32)  # diameter, share of the frame side
    second_object: float = 0.5  # clips with two objects, each in its own band (top and bottom)
    motions: tuple[str, ...] = ("linear", "circular", "zigzag", "bounce")
    non_rigid: float = 0.45  # objects with a pulsing, squashing or waving body (then also still, at times)
    bodies: tuple[str, ...] = ("pulsing", "squashing", "waving")
    body_amounts: tuple[float, float] = (0.2, 0.35)
    speed_change: float = 0.4  # objects (and camera moves) that ease in and out or stop halfway
    timings: tuple[str, ...] = ("ease", "stop-and-go")
    backgrounds: tuple[str, ...] = ("textured", "striped", "checkered", "spotted")
    plain_background: float = 0.15
    background_colours: tuple[str, ...] = ("white", "black", "gray")
    pan: float = 0.35  # clips whose camera pans (only), zooms (only), or both
    zoom: float = 0.15
    pan_and_zoom: float = 0.15
    pan_lengths: tuple[float, float] = (0.1, 0.25)  # share of the frame crossed over the clip
    zooms: tuple[float, ...] = (0.8, 1.25)  # the last frame's zoom (the first is 1)
    margin: float = 0.12  # object centres stay this far inside the frame in every frame
    tries: int = 50  # draws of a clip before giving up on keeping its objects inside

    def random_clip(
        self, rng: np.random.Generator, motion_phrase_probability: float = 0.7
    ) -> tuple[SyntheticVideo, str]:
        """A clip of the world and its prompt (with the motion phrase at the given rate)."""
        colours = rng.choice(COLOURS, size=2, replace=False)
        shapes = rng.choice(SHAPES, size=2)
        count = 2 if rng.random() < self.second_object else 1
        if rng.random() < self.plain_background:
            background, ground = "plain", (str(rng.choice(self.background_colours)),) * 2
        else:
            background = str(rng.choice(self.backgrounds))
            ground = tuple(str(c) for c in rng.choice(self.background_colours, size=2, replace=False))
        seed = int(rng.integers(2**31))
        for _ in range(self.tries):
            bands = [(0.2, 0.8)] if count == 1 else [(0.15, 0.45), (0.55, 0.85)]
            objects = [
                self.random_object(rng, str(shapes[n]), str(colours[n]), bands[n], still=n == 0) for n in range(count)
            ]
            camera = self.random_camera(rng)
            clip = synthetic_video(
                objects,
                num_frames=self.frames,
                height=self.size,
                width=self.size,
                background=background,
                background_colours=ground,
                seed=seed,
                **camera,
            )
            inside = clip.trajectories / self.size
            if np.all((inside >= self.margin) & (inside <= 1 - self.margin)):
                break
        appearance = scene_prompt(
            [(str(c), str(s)) for c, s in zip(colours[:count], shapes[:count], strict=True)], background, ground
        )
        return clip, clip.prompt if rng.random() < motion_phrase_probability else appearance

    def random_object(
        self, rng: np.random.Generator, shape: str, colour: str, band: tuple[float, float], still: bool = True
    ) -> MovingObject:
        """One object moving within a horizontal band of the frame (y between `band`'s fractions); a non-rigid one
        may stand still if `still` (a second object always travels, so that two objects move differently)."""
        body = str(rng.choice(self.bodies)) if rng.random() < self.non_rigid else "rigid"
        motions = self.motions + (("static",) if body != "rigid" and still else ())
        motion = str(rng.choice(motions))
        timing = str(rng.choice(self.timings)) if rng.random() < self.speed_change else "constant"
        middle, half = (band[0] + band[1]) / 2, (band[1] - band[0]) / 2
        settings = {
            "size": float(rng.uniform(*self.object_sizes)),
            "timing": timing,
            "body": body,
            "body_amount": float(rng.uniform(*self.body_amounts)),
            "body_cycles": float(rng.choice([1.0, 1.5, 2.0])),
        }
        if motion == "circular":
            radius = 0.6 * half
            return MovingObject(
                shape,
                colour,
                motion,
                start=(0.5, middle - radius),
                end=(0.5, middle),
                turns=float(rng.choice([-1, 1]) * rng.choice([0.75, 1.0])),
                **settings,
            )
        x = rng.uniform(0.2, 0.35, size=2) * (1, -1) + (0, 1)  # a start on the left, an end on the right
        y = rng.uniform(middle - 0.5 * half, middle + 0.5 * half, size=2)
        if motion == "bounce":
            y[:] = band[1] - 0.1
        start, end = np.stack([x, y], axis=1)
        if rng.random() < 0.5:
            start, end = end, start
        return MovingObject(
            shape, colour, motion, start=tuple(start), end=tuple(end), amplitude=0.6 * half, turns=1.0, **settings
        )

    def random_camera(self, rng: np.random.Generator) -> dict:
        """`synthetic_video`'s camera arguments: still, panning, zooming or both."""
        choice = rng.random()
        pans = choice < self.pan or self.pan + self.zoom <= choice < self.pan + self.zoom + self.pan_and_zoom
        zooms = self.pan <= choice < self.pan + self.zoom + self.pan_and_zoom
        angle = rng.choice(np.arange(8) * np.pi / 4)
        length = rng.uniform(*self.pan_lengths) if pans else 0.0
        timing = str(rng.choice(self.timings)) if rng.random() < self.speed_change else "constant"
        return {
            "pan": (float(length * np.cos(angle)), float(length * np.sin(angle))),
            "zoom": (1.0, float(rng.choice(self.zooms)) if zooms else 1.0),
            "camera_timing": timing if pans or zooms else "constant",
        }


@dataclass(frozen=True)
class SimpleWorld:
    """The shipped model's world: `random_clip` above, one object on a plain background, 8 frames."""

    frames: int = FRAMES
    size: int = SIZE
    backgrounds: tuple[str, ...] = ("plain",)

    def random_clip(self, rng: np.random.Generator, motion_phrase_probability: float = 0.7):
        return random_clip(rng, motion_phrase_probability)


HARD = HardWorld()
WORLDS = {"simple": SimpleWorld(), "hard": HARD}


def reference_clip(reference: MovingObject) -> SyntheticVideo:
    """The clip of one reference motion at the world's size, on plain white, with its ground truth."""
    return synthetic_video(reference, num_frames=FRAMES, height=SIZE, width=SIZE, background_colours=("white", "white"))


MTBENCH_LEVELS = {"diagonal": "easy", "circle": "medium", "zigzag": "hard"}  # a reference motion's difficulty


def write_mtbench_folder(folder: Path, frames: int = FRAMES, size: int = SIZE) -> Path:
    """A folder in MTBench's layout (`sma.benchmark.suite.read_mtbench`) from the simple world: its three reference
    motions as clips in difficulty folders, each with its first frame's mask, its caption and two targets, so that
    `sma benchmark FOLDER` runs on the embedded model what it runs on the real benchmark."""
    from PIL import Image

    from sma.video import write_video

    for name, level in MTBENCH_LEVELS.items():
        clip = synthetic_video(
            REFERENCE_MOTIONS[name], num_frames=frames, height=size, width=size, background_colours=("white", "white")
        )
        root = Path(folder) / level / name
        write_video(root / "videos" / f"{name}.mp4", clip.frames, fps=clip.fps)
        (root / "masks" / name).mkdir(parents=True)
        Image.fromarray(clip.masks[0].astype(np.uint8) * 255).save(root / "masks" / name / "00000.png")
        (root / "prompts.txt").write_text(clip.prompt + "\n")
        (root / "eval_prompts.txt").write_text("".join(f"{target.prompt}\n" for target in DEMO_TARGETS["simple"]))
    return Path(folder)


def run_config(
    model: str,
    reference_prompt: str,
    targets: list[str],
    *,
    method: str = "vmc",
    world: str = "simple",
    steps: int,
    seed: int,
    sma: bool = True,
    sampling_steps: int,
    guidance_scale: float,
    overrides: dict | None = None,
) -> TransferConfig:
    """A short transfer at the `world`'s size, as the demo and the ablation run it; `overrides`
    (dotted keys) come last.

    Methods other than VMC (MotionDirector's LoRAs) train at half VMC's learning rate; methods that train
    nothing (DMT, FlowMotion) take no training keys; each output of a trained method starts from the inverted
    reference mixed half and half with fresh noise (`generate.noise_prior` 0.5).
    """
    from sma.methods import method_class

    chosen = method_class(method)
    training = {"train.steps": steps, "train.checkpoint_every": steps}
    training["train.learning_rate"] = 1e-3 if method == "vmc" else 5e-4
    return load_config(
        overrides={
            "method": method,
            "model": model,
            "prompt": reference_prompt,
            "targets": targets,
            "seed": seed,
            "video.frames": WORLDS[world].frames,
            "video.height": WORLDS[world].size,
            "video.width": WORLDS[world].size,
            **chosen.sma_switch(sma),
            **(training if chosen.trains else {}),
            "generate.steps": sampling_steps,
            "generate.inversion_steps": sampling_steps,
            "generate.guidance_scale": guidance_scale,
            "generate.noise_prior": 0.5,
            **(overrides or {}),
        }
    )


@torch.no_grad()
def sample_untuned(
    model: TextToVideoModel,
    prompt: str,
    seed: int,
    steps: int = 30,
    guidance_scale: float = 5.0,
    *,
    frames: int = FRAMES,
    size: int = SIZE,
) -> torch.Tensor:
    """DDIM from fresh noise with classifier-free guidance, as a user samples the model: the
    motion the model picks by itself."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(model.latent_shape(frames, size, size), generator=generator).to(model.device)
    denoise = guided(model.predict, model.encode_prompts([prompt]), model.encode_prompts([""]), guidance_scale)
    latents = sample(denoise, noise, make_scheduler("ddim", model.scheduler.config), steps, progress=False)
    return model.decode_latents(latents)
