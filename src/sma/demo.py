"""`sma demo`: motion transfer on an embedded model, end to end, in a few minutes on a CPU.

A synthetic reference clip (known trajectory) is transferred to new appearances with VMC +
SMA and with VMC alone, and the same prompts are sampled from the untuned model twice: from
fresh noise (untuned), and as the transfers generate, from the reference's DDIM inversion
mixed with noise (inverted: the control that says what the training itself adds). The run
folder holds every video (named reference, untuned, inverted, sma, nosma), a side-by-side
grid, the loss curves and metrics.json: scores against the reference and its ground truth.

Two cases, one per embedded model: the simple world's (one rigid shape zigzagging on plain
white; motion fidelity, trajectory error, whether the target's colour and shape and not the
reference's colour are on screen) and the hard world's (a shape zigzagging on a textured
background under a panning camera, transferred to other shapes on other textures; the
ground-truth metrics of `sma benchmark`: the object's path found by its colour, the camera's
motion, and the reference's colour and texture leaking into the output).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sma.benchmark import Target, ground_truth_scores
from sma.config import TransferConfig
from sma.embedded import embedded_model
from sma.embedded.world import WORLDS, measure, run_config, scene_prompt
from sma.metrics import motion_fidelity
from sma.run_folder import ADAPTER_DIR, UNTUNED_DIR, check_run_dir, create_run_dir, slug, video_path
from sma.runs import generate, train, transfer
from sma.video import MovingObject, SyntheticVideo, read_video, synthetic_video, write_grid, write_video
from sma.video.atomic import atomic_output

DEMO_FILE = "demo.json"


def target(objects: list[tuple[str, str]], texture: str, colours: tuple[str, str]) -> Target:
    return Target(scene_prompt(objects, texture, colours), tuple(objects), texture)


@dataclass(frozen=True)
class Case:
    """A demo: a world's synthetic reference (`synthetic_video` arguments), its targets, and which scores the
    summary prints (key, header)."""

    world: str
    scene: dict[str, Any]
    targets: tuple[Target, ...]
    columns: tuple[tuple[str, str], ...]

    def clip(self) -> SyntheticVideo:
        world = WORLDS[self.world]
        return synthetic_video(**self.scene, num_frames=world.frames, height=world.size, width=world.size)

    def score(self, frames: np.ndarray, reference: np.ndarray, clip: SyntheticVideo, target: Target, config) -> dict:
        """The simple world's scores (`sma.embedded.world.measure`), or the hard world's: motion fidelity and the
        ground-truth metrics of `sma benchmark`."""
        if self.world == "simple":
            return measure(frames, reference, clip, *target.objects[0])
        fidelity = {"motion_fidelity": motion_fidelity(reference, frames).motion_fidelity}
        return fidelity | ground_truth_scores(clip, self.scene, target, reference, frames, config.video)


CASES = {
    "simple": Case(
        "simple",
        {
            "objects": MovingObject(
                "circle", "red", "zigzag", start=(0.25, 0.5), end=(0.75, 0.5), size=0.35, turns=1.0
            ),
            "background_colours": ("white", "white"),
        },
        (  # on the reference's ground
            target([("blue", "square")], "plain", ("white", "white")),
            target([("yellow", "star")], "plain", ("white", "white")),
        ),
        (
            ("motion_fidelity", "motion fidelity"),
            ("trajectory_error_px", "trajectory error (px)"),
            ("appearance_accuracy", "appearance"),
            ("reference_colour_fraction", "reference colour"),
        ),
    ),
    "hard": Case(
        "hard",
        {
            "objects": MovingObject(
                "circle", "red", "zigzag", start=(0.3, 0.5), end=(0.6, 0.5), size=0.28, amplitude=0.12
            ),
            "background": "textured",
            "background_colours": ("white", "black"),
            "pan": (0.22, 0.0),
            "seed": 1,
        },
        (
            target([("blue", "square")], "checkered", ("gray", "white")),
            target([("yellow", "star")], "spotted", ("black", "gray")),
        ),
        (
            ("motion_fidelity", "motion fidelity"),
            ("object_error_px", "object error (px)"),
            ("camera_error_px", "camera error (px)"),
            ("appearance_accuracy", "appearance"),
            ("colour_leakage", "colour leakage"),
            ("texture_leakage", "texture leakage"),
        ),
    ),
}


def write_untuned(config: TransferConfig, reference: Path, run_dir: Path) -> dict[str, list[np.ndarray]]:
    """Each target as the model samples it before any tuning, in one `sma.runs.transfer` with `tune=False` and
    `generate.untuned`: as the transfers generate, from the reference's inversion (inverted), and from fresh
    noise (untuned); copied to inverted-TARGET.mp4 and untuned-TARGET.mp4 and read back as the others are."""
    with_baseline = dataclasses.replace(config, generate=dataclasses.replace(config.generate, untuned=True))
    run = transfer(with_baseline, reference, run_dir / "inverted", overwrite=True, tune=False)
    videos = {}
    for label, folder in (("untuned", UNTUNED_DIR), ("inverted", "videos")):
        videos[label] = []
        for index, prompt in enumerate(config.targets):
            final = run_dir / f"{label}-{slug(prompt)}.mp4"
            shutil.copyfile(video_path(run, index, prompt, folder=folder), final)
            videos[label].append(read_video(final))
    return videos


def run_demo(
    out: Path,
    *,
    world: str = "simple",
    model: str | None = None,
    steps: int = 150,
    sampling_steps: int = 25,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write the demo run folder of a world's case; `steps` trains each VMC run, `sampling_steps` each DDIM pass."""
    case = CASES[world]
    out = check_run_dir(Path(out), overwrite, resume=False, marker=DEMO_FILE)
    model = model or embedded_model(world)
    clip = case.clip()
    run_dir = create_run_dir(out, overwrite, resume=False)
    settings = {"world": world, "model": model, "steps": steps, "sampling_steps": sampling_steps, "seed": seed}
    (run_dir / DEMO_FILE).write_text(json.dumps(settings, indent=1))  # first: marks the folder as a demo's
    write_video(run_dir / "reference-input.mp4", clip.frames, overwrite=True)
    prompts = [target.prompt for target in case.targets]
    configs = {
        label: run_config(
            model,
            clip.prompt,
            prompts,
            world=world,
            steps=steps,
            seed=seed,
            sma=use_sma,
            sampling_steps=sampling_steps,
            guidance_scale=7.5,
        )
        for label, use_sma in (("sma", True), ("nosma", False))
    }
    baseline = write_untuned(configs["nosma"], run_dir / "reference-input.mp4", run_dir)
    videos: dict[str, list[np.ndarray]] = {**baseline, "sma": [], "nosma": []}
    for label, config in configs.items():
        trained = train(config, run_dir / "reference-input.mp4", run_dir / f"train-{label}", overwrite=True)
        for index, path in enumerate(generate(trained / ADAPTER_DIR, prompts, trained, overwrite=True)):
            final = run_dir / f"{label}-{slug(prompts[index])}.mp4"
            write_video(final, read_video(path), overwrite=True)
            videos[label].append(read_video(final))
    reference = read_video(run_dir / "train-sma" / "reference.mp4")
    write_video(run_dir / "reference.mp4", reference, overwrite=True)
    # one row per target: reference, untuned, inverted, sma, nosma
    cells, captions = [], []
    for index, wanted in enumerate(case.targets):
        looks = " and ".join(f"{colour} {shape}" for colour, shape in wanted.objects)
        cells += [reference, *(videos[label][index] for label in videos)]
        captions += ["reference", *(f"{label}: {looks}" for label in videos)]
    for name in ("comparison.mp4", "comparison.gif"):
        write_grid(run_dir / name, cells, captions, columns=1 + len(videos), overwrite=True)
    metrics = report(case, reference, clip, videos, configs["sma"])
    with atomic_output(run_dir / "metrics.json", overwrite=True) as temporary:
        temporary.write_text(json.dumps(metrics, indent=2))
    return run_dir


def report(case: Case, reference: np.ndarray, clip, videos: dict[str, list[np.ndarray]], config) -> dict:
    """Every output's scores, and their means by kind of video (over the targets where a score applies)."""
    results = {"world": case.world, "reference": clip.prompt, "outputs": []}
    for label, outputs in videos.items():
        for wanted, frames in zip(case.targets, outputs, strict=True):
            entry = {"video": f"{label}-{slug(wanted.prompt)}.mp4", "kind": label, "target": wanted.prompt}
            results["outputs"].append(entry | case.score(frames, reference, clip, wanted, config))
    results["summary"] = {
        label: {
            key: float(np.mean([entry[key] for entry in results["outputs"] if entry["kind"] == label]))
            for key, _ in case.columns
        }
        for label in videos
    }
    return results
