"""The synthetic world the embedded model learns, and how transfers in it are run and measured.

A deliberately small world (four shapes, six colours, three backgrounds, four kinds of
motion) so that a model trained for an hour on two CPU cores can render the prompted shape
and colour and move it. Prompts name the appearance and, most of the time, the motion;
without a motion phrase the model must choose a motion itself, which is what motion
transfer then replaces. `sma demo` and the model's training set up, sample and score their runs
here; the toy suite of `sma benchmark` (benchmarks/suites/toy.yaml) builds its prompts here.
"""

from __future__ import annotations

import numpy as np
import torch

from sma.backbones.text_to_video import TextToVideoModel
from sma.config import TransferConfig
from sma.metrics.appearance import appearance_accuracy, colour_fraction
from sma.metrics.motion_fidelity import motion_fidelity
from sma.metrics.trajectory import trajectory_error
from sma.recipes import load_config
from sma.sampling import guided, make_scheduler, sample
from sma.video.synthetic import MovingObject, SyntheticVideo, rgb, synthetic_video

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


def reference_clip(reference: MovingObject) -> SyntheticVideo:
    """The clip of one reference motion at the world's size, on plain white, with its ground truth."""
    return synthetic_video(reference, num_frames=FRAMES, height=SIZE, width=SIZE, background_colours=("white", "white"))


def run_config(
    model: str,
    reference_prompt: str,
    targets: list[str],
    *,
    method: str = "vmc",
    steps: int,
    seed: int,
    sma: bool = True,
    sampling_steps: int,
    guidance_scale: float,
    overrides: dict | None = None,
) -> TransferConfig:
    """A short transfer at the world's size, as the demo and the ablation run it; `overrides`
    (dotted keys) come last.

    Methods other than VMC (MotionDirector's LoRAs) train at half VMC's learning rate; each
    output starts from the inverted reference mixed half and half with fresh noise
    (`generate.noise_prior` 0.5).
    """
    return load_config(
        overrides={
            "method": method,
            "model": model,
            "prompt": reference_prompt,
            "targets": targets,
            "seed": seed,
            "video.frames": FRAMES,
            "video.height": SIZE,
            "video.width": SIZE,
            "sma.enabled": sma,
            "train.steps": steps,
            "train.learning_rate": 1e-3 if method == "vmc" else 5e-4,
            "train.checkpoint_every": steps,
            "generate.steps": sampling_steps,
            "generate.inversion_steps": sampling_steps,
            "generate.guidance_scale": guidance_scale,
            "generate.noise_prior": 0.5,
            **(overrides or {}),
        }
    )


@torch.no_grad()
def sample_untuned(
    model: TextToVideoModel, prompt: str, seed: int, steps: int = 30, guidance_scale: float = 5.0
) -> torch.Tensor:
    """DDIM from fresh noise with classifier-free guidance, as a user samples the model: the
    motion the model picks by itself."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(model.latent_shape(FRAMES, SIZE, SIZE), generator=generator)
    denoise = guided(model.predict, model.encode_prompts([prompt]), model.encode_prompts([""]), guidance_scale)
    latents = sample(denoise, noise, make_scheduler("ddim", model.scheduler.config), steps, progress=False)
    return model.decode_latents(latents)


def measure(frames: np.ndarray, reference: np.ndarray, clip: SyntheticVideo, colour: str, shape: str) -> dict:
    """Scores of `frames`, generated for a `colour` `shape` from the run on `clip` (`reference`:
    the clip as the run read it): motion fidelity against the reference, trajectory error
    against the ground truth, and whether the target's colour and shape, and not the
    reference's colour, are on screen."""
    fidelity = motion_fidelity(reference, frames)
    reference_colour = rgb(clip.objects[0].colour)
    return {
        "motion_fidelity": fidelity.motion_fidelity,
        "motion_fidelity_two_sided": fidelity.two_sided,
        "trajectory_error_px": trajectory_error(frames, clip.trajectories, clip.sizes).mean_error,
        "appearance_accuracy": appearance_accuracy(frames, rgb(colour), shape, reference_colour),
        "target_colour_fraction": colour_fraction(frames, rgb(colour)),
        "reference_colour_fraction": colour_fraction(frames, reference_colour),
        "tracker": fidelity.tracker,
    }
