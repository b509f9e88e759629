"""Time `sma evaluate` on a 24-frame 320x576 pair: reading both mp4 files and motion fidelity.

The pair is synthetic (a reference and the same motion in other colours, placed elsewhere,
on a textured background), written to mp4 first so that decoding is part of the time.
CLIP is left out: its cost depends on the model and no weights can be downloaded here.
Target: under 10 s on 2 CPU cores.

    python benchmarks/evaluate.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch

from sma.metrics import motion_fidelity
from sma.video import MovingObject, read_video, synthetic_video, write_video

FRAMES, HEIGHT, WIDTH = 24, 320, 576


def make_pair(folder: Path) -> tuple[Path, Path]:
    def clip(colour: str, start, end, background_colours, seed):
        obj = MovingObject("star", colour, "zigzag", start=start, end=end, size=0.3, rotation=60)
        video = synthetic_video(
            obj,
            num_frames=FRAMES,
            height=HEIGHT,
            width=WIDTH,
            background="textured",
            background_colours=background_colours,
            pan=(0.1, 0.0),
            seed=seed,
        )
        return video.frames

    reference = write_video(folder / "reference.mp4", clip("red", (0.2, 0.4), (0.8, 0.5), ("white", "gray"), 0))
    generated = write_video(folder / "generated.mp4", clip("blue", (0.25, 0.5), (0.85, 0.6), ("green", "yellow"), 1))
    return reference, generated


def evaluate(reference_path: Path, generated_path: Path) -> tuple[float, float]:
    """What `sma evaluate REFERENCE GENERATED --no-clip` does; returns (motion fidelity, seconds)."""
    started = time.perf_counter()
    reference = read_video(reference_path)
    generated = read_video(generated_path, len(reference), size=reference.shape[1:3])
    score = motion_fidelity(reference, generated)
    return score.motion_fidelity, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    cv2.setNumThreads(arguments.threads)
    with tempfile.TemporaryDirectory() as folder:
        reference, generated = make_pair(Path(folder))
        runs = [evaluate(reference, generated) for _ in range(arguments.repeats)]
    seconds = [elapsed for _, elapsed in runs]
    print(f"sma evaluate, {FRAMES}-frame {HEIGHT}x{WIDTH} pair (read 2 mp4 + motion fidelity, 32x32 grid, no CLIP)")
    print(
        f"  {arguments.threads} threads, {arguments.repeats} runs: median {statistics.median(seconds):.2f} s, "
        f"min {min(seconds):.2f} s (target < 10 s); motion_fidelity = {runs[0][0]:.4f}"
    )


if __name__ == "__main__":
    main()
