"""How well a model's samples hold their objects over a clip: the world's own clips against samples.

For each of `--clips` clips of the world (seeded), the model samples the clip's prompt from fresh
noise (DDIM, guidance 5, as the model card does). Each object the prompt names is found by its
colour frame by frame (the largest blob within the trajectory metric's tolerance), and scored by
the share of frames it is found in, the median jump of its centre between consecutive frames
where it is found, and the share of those jumps over 8 px (an object the model keeps moves a few
pixels a frame; one it redraws elsewhere jumps). The clips themselves give the scale.

    python benchmarks/coherence.py MODEL [MODEL ...] [--world hard] [--clips 24] [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

JUMP_PX = 8.0


def object_scores(frames: np.ndarray, colours: list[tuple[int, int, int]]) -> tuple[float, list[float]]:
    """Share of (object, frame) pairs found, and the jumps (px) of each object between consecutive found frames."""
    from sma.metrics.trajectory import colour_centres

    found, jumps = [], []
    for colour in colours:
        centres = colour_centres(frames, colour)
        found += [centre is not None for centre in centres]
        jumps += [
            float(np.hypot(*(after - before)))
            for before, after in itertools.pairwise(centres)
            if before is not None and after is not None
        ]
    return float(np.mean(found)), jumps


def summary(name: str, scores: list[tuple[float, list[float]]]) -> str:
    jumps = np.array([jump for _, clip_jumps in scores for jump in clip_jumps])
    found = np.mean([share for share, _ in scores])
    median = np.median(jumps) if len(jumps) else float("nan")
    large = (jumps > JUMP_PX).mean() if len(jumps) else float("nan")
    return f"| {name} | {found:.2f} | {median:.2f} | {large:.2f} |"


def main() -> None:
    from sma.backbones.text_to_video import TextToVideoModel
    from sma.embedded.world import WORLDS, sample_untuned
    from sma.video.frames import tensor_to_frames
    from sma.video.synthetic import rgb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model folders (or hub ids) to sample")
    parser.add_argument("--world", default="hard", choices=sorted(WORLDS))
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--steps", type=int, default=30, help="DDIM steps per sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    world, rng = WORLDS[arguments.world], np.random.default_rng(arguments.seed)
    clips = [world.random_clip(rng) for _ in range(arguments.clips)]
    colours = [[rgb(thing.colour) for thing in clip.objects] for clip, _ in clips]
    print(
        f"{arguments.clips} clips of the {arguments.world} world (seed {arguments.seed}), {arguments.steps} DDIM steps"
    )
    print("| frames from | objects found | median jump (px) | jumps over 8 px |")
    print("| --- | --- | --- | --- |")
    print(
        summary("the clips", [object_scores(clip.frames, c) for (clip, _), c in zip(clips, colours, strict=True)]),
        flush=True,
    )
    for source in arguments.models:
        model = TextToVideoModel.from_pretrained(source)
        scores = []
        for index, ((_, prompt), clip_colours) in enumerate(zip(clips, colours, strict=True)):
            video = sample_untuned(
                model, prompt, arguments.seed + index, arguments.steps, frames=world.frames, size=world.size
            )
            scores.append(object_scores(tensor_to_frames(video[0]), clip_colours))
        print(summary(source, scores), flush=True)


if __name__ == "__main__":
    main()
