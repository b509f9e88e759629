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
import shutil
from pathlib import Path

import numpy as np

from sma.config import TransferConfig
from sma.embedded import embedded_model
from sma.embedded.world import appearance_prompt, measure, reference_clip, run_config
from sma.run_folder import check_run_dir, create_run_dir, slug
from sma.runs import generate, train, untuned
from sma.video import MovingObject, read_video, write_grid, write_video
from sma.video.atomic import atomic_output

DEMO_FILE = "demo.json"
REFERENCE = MovingObject("circle", "red", "zigzag", start=(0.25, 0.5), end=(0.75, 0.5), size=0.35, turns=1.0)
TARGETS = (("blue", "square", "white"), ("yellow", "star", "white"))  # same background as the reference


def write_untuned(config: TransferConfig, reference: Path, run_dir: Path) -> list[np.ndarray]:
    """Each target as the model samples it before any tuning (`sma.runs.untuned`: DDIM from fresh noise),
    copied to untuned-TARGET.mp4 and read back as the others are."""
    videos = []
    for path, prompt in zip(untuned(config, reference, run_dir, overwrite=True), config.targets, strict=True):
        final = run_dir / f"untuned-{slug(prompt)}.mp4"
        shutil.copyfile(path, final)
        videos.append(read_video(final))
    return videos


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
    out = check_run_dir(Path(out), overwrite, resume=False, marker=DEMO_FILE)
    model = model or embedded_model()
    clip = reference_clip(REFERENCE)
    run_dir = create_run_dir(out, overwrite, resume=False)
    settings = {"model": model, "steps": steps, "sampling_steps": sampling_steps, "seed": seed}
    (run_dir / DEMO_FILE).write_text(json.dumps(settings, indent=1))  # first: marks the folder as a demo's
    write_video(run_dir / "reference-input.mp4", clip.frames, overwrite=True)
    prompts = [appearance_prompt(*target) for target in TARGETS]
    configs = {
        label: run_config(
            model,
            clip.prompt,
            prompts,
            steps=steps,
            seed=seed,
            sma=use_sma,
            sampling_steps=sampling_steps,
            guidance_scale=7.5,
        )
        for label, use_sma in (("sma", True), ("nosma", False))
    }
    baseline = write_untuned(configs["sma"], run_dir / "reference-input.mp4", run_dir)  # SMA plays no part in it
    videos: dict[str, list[np.ndarray]] = {"untuned": baseline, "sma": [], "nosma": []}
    for label, config in configs.items():
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
    metrics = report(reference, clip, videos, prompts)
    with atomic_output(run_dir / "metrics.json", overwrite=True) as temporary:
        temporary.write_text(json.dumps(metrics, indent=2))
    return run_dir


def report(reference: np.ndarray, clip, videos: dict[str, list[np.ndarray]], prompts: list[str]) -> dict:
    """Every output's scores, and their means by kind of video."""
    results = {"reference": clip.prompt, "outputs": []}
    for label, outputs in videos.items():
        for (colour, shape, _), prompt, frames in zip(TARGETS, prompts, outputs, strict=True):
            entry = {"video": f"{label}-{slug(prompt)}.mp4", "kind": label, "target": prompt}
            results["outputs"].append(entry | measure(frames, reference, clip, colour, shape))
    results["summary"] = {
        label: {
            key: float(np.mean([entry[key] for entry in results["outputs"] if entry["kind"] == label]))
            for key in ("motion_fidelity", "trajectory_error_px", "appearance_accuracy", "reference_colour_fraction")
        }
        for label in videos
    }
    return results
