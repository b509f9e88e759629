"""The metric card: every motion metric against copies that keep a clip's motion and copies that change it.

Sources: the synthetic textured scene (sma.metrics.card) at several sizes, the hard world's five kinds of
scene (suites/hard.yaml) at one size, and the real clips in ../shared/clips (skipped when absent), read at
256 x 256. Each source is compared with
itself, with copies that keep its motion (mp4 crf 30, gif, png frames, half size, new look,
shifted) and with copies that change it (another path, mirrored, reversed, shuffled); see
sma.metrics.card for how each is made. Prints markdown tables for docs/results.md.

    python benchmarks/metric_card.py [--sizes 64 128 256] [--frames 16] [--clips ../shared/clips]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sma.benchmark import read_suite
from sma.metrics import (
    flow_similarity,
    motion_fidelity,
    motion_magnitude,
    robust_motion_fidelity,
    trajectory_error,
    video_flow,
    warping_error,
)
from sma.metrics.card import (
    CHANGES_MOTION,
    KEEPS_MOTION,
    as_reference,
    motion_changes,
    recoloured,
    reencodings,
    textured_scene,
    translated,
)
from sma.metrics.mtbench import mtbench_motion_fidelity
from sma.video import read_video, synthetic_video

CLIPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "clips"
CASES = ("self", *KEEPS_MOTION, *CHANGES_MOTION)


@dataclass
class Source:
    name: str
    cases: dict  # case name -> frames; "self" is the reference
    truth: tuple | None = None  # (trajectories, sizes) of the reference, for synthetic scenes


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool | None  # None: a ratio to the reference's own value, 1 is "unchanged"
    score: Callable  # (reference case, case, source) -> float; a case is (frames, flow)
    synthetic_only: bool = False


def ratio(metric: Callable, reference, case) -> float:
    return metric(case[1]) / metric(reference[1])


METRICS = (
    Metric("motion fidelity, Lucas-Kanade (old)", True, lambda r, c, s: motion_fidelity(r[0], c[0]).motion_fidelity),
    Metric("robust motion fidelity", True, lambda r, c, s: robust_motion_fidelity(r[1], c[1]).motion_fidelity),
    Metric(
        "robust motion fidelity, two-sided (mean)",
        True,
        lambda r, c, s: robust_motion_fidelity(r[1], c[1]).two_sided_mean,
    ),
    Metric("MTBench motion fidelity (DeT's hybrid)", True, lambda r, c, s: mtbench_motion_fidelity(r[1], c[1]).hybrid),
    Metric("flow cosine", True, lambda r, c, s: flow_similarity(r[1], c[1]).cosine),
    Metric("flow relative end-point error", False, lambda r, c, s: flow_similarity(r[1], c[1]).relative_endpoint_error),
    Metric("warping error, ratio to the reference's", None, lambda r, c, s: ratio(warping_error, r, c)),
    Metric("motion magnitude, ratio to the reference's", None, lambda r, c, s: ratio(motion_magnitude, r, c)),
    Metric(
        "trajectory error (px, against the reference's truth)",
        False,
        lambda r, c, s: trajectory_error(c[0], *s.truth).mean_error,
        synthetic_only=True,
    ),
)


def synthetic_source(size: int, frames: int, folder: Path) -> Source:
    scene = textured_scene(size=size, num_frames=frames)
    cases = {"self": as_reference(scene.frames, folder / "self")}
    cases |= reencodings(scene.frames, folder)
    cases["new look"] = as_reference(textured_scene(size=size, num_frames=frames, look=1).frames, folder / "look")
    cases["shifted"] = as_reference(textured_scene(size=size, num_frames=frames, offset=0.05).frames, folder / "shift")
    cases["other path"] = as_reference(textured_scene("zigzag", size=size, num_frames=frames).frames, folder / "path")
    cases |= motion_changes(cases["self"])
    return Source(f"synthetic {size}x{size}", cases, (scene.trajectories, scene.sizes))


def clip_source(path: Path, other: Path, frames: int, folder: Path) -> Source:
    def read(clip: Path) -> np.ndarray:
        return read_video(clip, frames, stride=2, size=(256, 256))

    return frames_source(path.stem, read(path), read(other), folder)


def frames_source(name: str, raw: np.ndarray, other: np.ndarray, folder: Path) -> Source:
    """The cases of frames without a ground truth: a new look by shifted colours, another path by other frames."""
    cases = {"self": as_reference(raw, folder / "self")}
    cases |= reencodings(raw, folder)
    cases["new look"] = as_reference(recoloured(raw), folder / "look")
    cases["shifted"] = as_reference(translated(raw), folder / "shift")
    cases["other path"] = as_reference(other, folder / "path")
    cases |= motion_changes(cases["self"])
    return Source(name, cases)


def hard_scenes(size: int, frames: int) -> dict[str, np.ndarray]:
    """The hard world's kinds of scene (suites/hard.yaml: camera pan and zoom, two objects, non-rigid bodies,
    changes of speed, on textured backgrounds), rendered at `size`."""
    suite = read_suite(Path(__file__).parent / "suites" / "hard.yaml")
    return {
        reference.name: synthetic_video(**reference.synthetic, num_frames=frames, height=size, width=size).frames
        for reference in suite.references
    }


def score_source(source: Source) -> dict[str, dict[str, float]]:
    """metric name -> case -> value."""
    flows = {case: (frames, video_flow(frames)) for case, frames in source.cases.items()}
    table = {}
    for metric in METRICS:
        if metric.synthetic_only and source.truth is None:
            continue
        table[metric.name] = {case: metric.score(flows["self"], flows[case], source) for case in CASES}
    return table


def margin(metric: Metric, values: dict[str, float]) -> str:
    """Worst case that keeps the motion against the best case that changes it, and the gap between them."""
    kept = [values[case] for case in KEEPS_MOTION]
    changed = [values[case] for case in CHANGES_MOTION]
    if metric.higher_is_better is None:
        worst = max(kept, key=lambda value: abs(np.log(value)))
        return f"kept within x{worst:.2f}; changed {min(changed):.2f}..{max(changed):.2f}"
    if metric.higher_is_better:
        worst, best = min(kept), max(changed)
        return f"{worst:.3f} vs {best:.3f}: gap {worst - best:+.3f}"
    worst, best = max(kept), min(changed)
    return f"{worst:.3f} vs {best:.3f}: gap {best - worst:+.3f}"


def print_card(scores: dict[str, dict[str, dict[str, float]]]) -> None:
    for metric in METRICS:
        rows = [(source, table[metric.name]) for source, table in scores.items() if metric.name in table]
        if not rows:
            continue
        arrow = {True: " ↑", False: " ↓", None: ""}[metric.higher_is_better]
        print(f"\n**{metric.name}{arrow}**\n")
        print("| source | " + " | ".join(CASES) + " | worst kept vs best changed |")
        print("|---" * (len(CASES) + 2) + "|")
        for source, values in rows:
            cells = " | ".join(f"{values[case]:.3f}" for case in CASES)
            print(f"| {source} | {cells} | {margin(metric, values)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256], help="synthetic scene sizes")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--clips", type=Path, default=CLIPS, help="folder of real clips (skipped when absent)")
    parser.add_argument("--scene-size", type=int, default=128, help="size of the hard world's scenes (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    cv2.setNumThreads(arguments.threads)
    started = time.perf_counter()
    clips = sorted(arguments.clips.glob("*.mp4")) if arguments.clips.is_dir() else []
    scores = {}
    with tempfile.TemporaryDirectory() as temporary:
        for size in arguments.sizes:
            folder = Path(temporary, f"synthetic{size}")
            source = synthetic_source(size, arguments.frames, folder)
            scores[source.name] = score_source(source)
        scenes = hard_scenes(arguments.scene_size, arguments.frames) if arguments.scene_size else {}
        names = list(scenes)
        for index, name in enumerate(names):  # another path: the next kind of scene
            other = scenes[names[(index + 1) % len(names)]]
            source = frames_source(f"{name} {arguments.scene_size}px", scenes[name], other, Path(temporary, name))
            scores[source.name] = score_source(source)
        for index, clip in enumerate(clips):
            folder = Path(temporary, clip.stem)
            source = clip_source(clip, clips[(index + 1) % len(clips)], arguments.frames, folder)
            scores[source.name] = score_source(source)
    print(f"Metric card: {arguments.frames} frames per clip; real clips {'found' if clips else 'absent'}")
    print_card(scores)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
