"""`sma demo`: motion transfer on the embedded model, end to end, in a few minutes on a CPU.

A synthetic reference clip (known trajectory) is transferred to new appearances with VMC +
SMA and with VMC alone, and the same prompts are sampled from the untuned model. The run
folder holds every video (named reference, untuned, sma, nosma), a side-by-side grid,
the loss curves and metrics.json: motion fidelity against the reference, trajectory error
against the ground truth, and whether the target's colour and shape (and not the
reference's colour) are on screen.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from sma.embedded import embedded_model
from sma.metrics.appearance import appearance_accuracy, colour_fraction
from sma.metrics.motion_fidelity import motion_fidelity
from sma.metrics.trajectory import trajectory_error
from sma.recipes import load_config
from sma.run_folder import check_run_dir, create_run_dir, slug
from sma.runs import generate, train
from sma.sampling import guided, make_scheduler, sample
from sma.video import MovingObject, read_video, synthetic_video, write_grid, write_video
from sma.video.atomic import atomic_output
from sma.video.synthetic import rgb

REFERENCE = MovingObject("circle", "red", "zigzag", start=(0.25, 0.5), end=(0.75, 0.5), size=0.35, turns=1.0)
TARGETS = (("blue", "square", "white"), ("yellow", "star", "white"))  # same background as the reference


def target_prompt(colour: str, shape: str, background: str) -> str:
    return f"a {colour} {shape} on a plain {background} background"


def settings(model: str, prompt: str, targets: list[str], steps: int, seed: int, use_sma: bool, sampling_steps: int):
    return load_config(
        overrides={
            "method": "vmc",
            "model": model,
            "prompt": prompt,
            "targets": targets,
            "seed": seed,
            "video.frames": 8,
            "video.height": 64,
            "video.width": 64,
            "sma.enabled": use_sma,
            "train.steps": steps,
            "train.learning_rate": 1e-3,
            "train.checkpoint_every": steps,
            "generate.steps": sampling_steps,
            "generate.inversion_steps": sampling_steps,
            "generate.guidance_scale": 7.5,
            "generate.noise_prior": 0.5,
        }
    )


@torch.no_grad()
def sample_untuned(model_path: str, prompt: str, seed: int, steps: int) -> torch.Tensor:
    """Plain text-to-video sampling from fresh noise: the motion the model picks by itself."""
    from sma.backbones.text_to_video import TextToVideoModel

    model = TextToVideoModel.from_pretrained(model_path)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(model.latent_shape(8, 64, 64), generator=generator)
    denoise = guided(model.predict, model.encode_prompts([prompt]), model.encode_prompts([""]), 7.5)
    return model.decode_latents(sample(denoise, noise, make_scheduler("ddim", model.scheduler.config), steps))


def run_demo(
    out: Path,
    *,
    model: str | None = None,
    steps: int = 150,
    sampling_steps: int = 25,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write the demo run folder; `steps` trains each VMC run, `sampling_steps` each DDIM pass."""
    out = check_run_dir(Path(out), overwrite, resume=False)
    model = model or embedded_model()
    clip = synthetic_video(REFERENCE, num_frames=8, height=64, width=64, background_colours=("white", "white"))
    run_dir = create_run_dir(out, overwrite, resume=False)
    write_video(run_dir / "reference-input.mp4", clip.frames, overwrite=True)
    prompts = [target_prompt(*target) for target in TARGETS]
    videos: dict[str, list[np.ndarray]] = {"untuned": [], "sma": [], "nosma": []}
    for index, prompt in enumerate(prompts):
        path = run_dir / f"untuned-{slug(prompt)}.mp4"
        write_video(path, sample_untuned(model, prompt, seed + index, sampling_steps), overwrite=True)
        videos["untuned"].append(read_video(path))
    for label, use_sma in (("sma", True), ("nosma", False)):
        config = settings(model, clip.prompt, prompts, steps, seed, use_sma, sampling_steps)
        trained = train(config, run_dir / "reference-input.mp4", run_dir / f"train-{label}", overwrite=True)
        for index, path in enumerate(generate(trained / "adapter", prompts, trained, overwrite=True)):
            final = run_dir / f"{label}-{slug(prompts[index])}.mp4"
            write_video(final, read_video(path), overwrite=True)
            videos[label].append(read_video(final))
    reference = read_video(run_dir / "train-sma" / "reference.mp4")
    write_video(run_dir / "reference.mp4", reference, overwrite=True)
    # one row per target: reference, untuned, sma, nosma
    cells, captions = [], []
    for index, (colour, shape, _) in enumerate(TARGETS):
        cells += [reference, *(videos[label][index] for label in videos)]
        captions += ["reference", *(f"{label}: {colour} {shape}" for label in videos)]
    for name in ("comparison.mp4", "comparison.gif"):
        write_grid(run_dir / name, cells, captions, columns=1 + len(videos), overwrite=True)
    metrics = measure(reference, clip, videos, prompts)
    with atomic_output(run_dir / "metrics.json", overwrite=True) as temporary:
        temporary.write_text(json.dumps(metrics, indent=2))
    return run_dir


def measure(reference: np.ndarray, clip, videos: dict[str, list[np.ndarray]], prompts: list[str]) -> dict:
    """Motion against the reference and its ground truth; appearance against the target colours."""
    results = {"reference": clip.prompt, "outputs": []}
    for label, outputs in videos.items():
        for (colour, shape, _), prompt, frames in zip(TARGETS, prompts, outputs, strict=True):
            fidelity = motion_fidelity(reference, frames)
            error = trajectory_error(frames, clip.trajectories, clip.sizes)
            results["outputs"].append(
                {
                    "video": f"{label}-{slug(prompt)}.mp4",
                    "kind": label,
                    "target": prompt,
                    "motion_fidelity": fidelity.motion_fidelity,
                    "motion_fidelity_two_sided": fidelity.two_sided,
                    "trajectory_error_px": error.mean_error,
                    "appearance_accuracy": appearance_accuracy(frames, rgb(colour), shape, rgb(REFERENCE.colour)),
                    "target_colour_fraction": colour_fraction(frames, rgb(colour)),
                    "reference_colour_fraction": colour_fraction(frames, rgb(REFERENCE.colour)),
                    "tracker": fidelity.tracker,
                }
            )
    results["summary"] = {
        label: {
            key: float(np.mean([entry[key] for entry in results["outputs"] if entry["kind"] == label]))
            for key in ("motion_fidelity", "trajectory_error_px", "appearance_accuracy", "reference_colour_fraction")
        }
        for label in videos
    }
    return results
