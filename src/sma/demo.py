"""`sma demo`: motion transfer on an embedded model, end to end, in a few minutes on a CPU.

A synthetic reference clip (known trajectory) is transferred to new appearances with VMC +
SMA and with VMC alone, and the same prompts are sampled from the untuned model twice: from
fresh noise (untuned), and as the transfers generate, from the reference's DDIM inversion
mixed with noise (inverted: the control that says what the training itself adds). The run
folder holds every video (named reference, untuned, inverted, sma, nosma), a side-by-side
grid, the loss curves and metrics.json: scores against the reference and its ground truth.

Two cases, one per embedded model: the simple world's (one rigid shape zigzagging on plain
white) and the hard world's (a shape zigzagging on a textured background under a panning camera,
transferred to other shapes on other textures). Both are scored as `sma benchmark` scores
(`sma.evaluation.score`, robust motion fidelity first): the object's path found by its colour,
appearance, the camera's motion, and the reference's colour and texture leaking into the output.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sma.config import TransferConfig
from sma.embedded import embedded_model
from sma.embedded.scenes import DEMO_SCENES, DEMO_TARGETS, WORLD_SIZES
from sma.embedded.world import run_config
from sma.evaluation import HEADLINE, GroundTruth, Target, means, score
from sma.report import write_metrics
from sma.run_folder import ADAPTER_DIR, UNTUNED_DIR, check_run_dir, create_run_dir, slug, video_path
from sma.runs import generate, train, transfer
from sma.video import SyntheticVideo, read_video, synthetic_video, write_grid, write_video

DEMO_FILE = "demo.json"


@dataclass(frozen=True)
class Case:
    """A demo: a world's synthetic reference (`synthetic_video` arguments), its targets, and which scores the
    summary prints (`sma.evaluation.METRICS` keys)."""

    world: str
    scene: dict[str, Any]
    targets: tuple[Target, ...]
    columns: tuple[str, ...]

    def clip(self) -> SyntheticVideo:
        frames, size = WORLD_SIZES[self.world]
        return synthetic_video(**self.scene, num_frames=frames, height=size, width=size)

    def score(self, frames: np.ndarray, reference: np.ndarray, clip: SyntheticVideo, target: Target) -> dict:
        """`sma.evaluation.score` against the reference and the clip's ground truth, as `sma benchmark` scores."""
        truth = GroundTruth(clip, self.scene.get("background", "plain"), target)
        return score(reference, frames, truth=truth)


COLUMNS = {
    "simple": (HEADLINE, "trajectory_error_px", "appearance_accuracy", "colour_leakage"),
    "hard": (
        HEADLINE,
        "object_error_px",
        "camera_error_px",
        "appearance_accuracy",
        "colour_leakage",
        "texture_leakage",
    ),
}
CASES = {world: Case(world, DEMO_SCENES[world], DEMO_TARGETS[world], COLUMNS[world]) for world in DEMO_SCENES}


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
    write_metrics(run_dir, report(case, reference, clip, videos))
    return run_dir


def report(case: Case, reference: np.ndarray, clip, videos: dict[str, list[np.ndarray]]) -> dict:
    """metrics.json as a run folder holds it (the reference, then every output's scores), with the world, and the
    means of each kind of video (over the targets where a score applies)."""
    outputs = []
    for label, frames_of in videos.items():
        for wanted, frames in zip(case.targets, frames_of, strict=True):
            entry = {"video": f"{label}-{slug(wanted.prompt)}.mp4", "kind": label, "target": wanted.prompt}
            outputs.append(entry | case.score(frames, reference, clip, wanted))
    return {
        "reference": "reference.mp4",
        "reference_prompt": clip.prompt,
        "world": case.world,
        "outputs": outputs,
        "summary": means(outputs, by="kind"),
    }
