"""How many tracks the robust motion fidelity rests on, and whether they are right, on the hard world's scenes at 64
and 128 px and on issue 46's clip (a triangle circling over panning stripes, 16 and 24 of 24 frames, 64-128 px),
each against itself.

Per size: the fewest, the 10th percentile and the median of the reference's carrying tracks over the scenes and how
many fall below `sma.evaluation.MIN_TRACKS`, on grey flow alone and with the colour fallback `score` uses (and how
many scenes needed it); the triangle's counts the same two ways. Then the ground truth of the tracks scored: the share
that follow a true path (step-weighted correlation >= 0.9 with the camera's path from the track's start or with an
object's translation) and the mean distance of tracks that start inside an object from its true path, in pixels; for
the tracks of grey flow where it keeps enough and of colour flow where the fallback took over. Run it with another
checkout's `src` on PYTHONPATH to compare trackers (that checkout's figures for the fallback are grey's).

    python benchmarks/robust_tracks.py [--scenes 20] [--seed 11]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import cv2
import numpy as np

from sma.embedded.world import HardWorld
from sma.evaluation import MIN_TRACKS
from sma.metrics import video_flow
from sma.metrics.motion_fidelity import carrying_tracks, colour_fallback, step_weighted_correlation
from sma.video import MovingObject, SyntheticVideo, synthetic_video

TRIANGLE = MovingObject("triangle", "green", "circular", start=(0.5, 0.25), end=(0.5, 0.5), size=0.3)
FOLLOWS = 0.9  # a track follows a true path when its step-weighted correlation with it reaches this


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    arguments = parser.parse_args()
    checks: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"grey": [], "colour": []}
    for size in (64, 128):
        rng = np.random.default_rng(arguments.seed)
        clips = [HardWorld(size=size).random_clip(rng)[0] for _ in range(arguments.scenes)]
        grey, fallback = zip(*(counts(clip, checks) for clip in clips), strict=True)
        print(
            f"{size} px, {arguments.scenes} hard-world scenes: grey flow {spread(grey)}; with the colour fallback "
            f"{spread(fallback)} ({sum(a != b for a, b in zip(grey, fallback, strict=True))} on colour flow)"
        )
    for size in (64, 96, 128):
        clip = synthetic_video(TRIANGLE, background="striped", pan=(0.2, 0.0), num_frames=24, height=size, width=size)
        short = counts(_first(clip, 16), checks)
        whole = counts(clip, checks)
        print(
            f"triangle over panning stripes at {size} px, 16 / 24 frames: grey flow {short[0]} / {whole[0]}, "
            f"with the colour fallback {short[1]} / {whole[1]}"
        )
    for name, found in checks.items():
        follow, error = (np.concatenate(parts) for parts in zip(*found, strict=True)) if found else ([], [])
        where = "where it keeps enough" if name == "grey" else "where the fallback took over"
        print(
            f"{name} flow's tracks {where} ({len(found)} clips, {len(follow)} tracks): {np.mean(follow):.2f} follow a "
            f"true path; {len(error)} start inside an object, mean distance from its path median "
            f"{np.median(error):.2f} px, 90th percentile {np.quantile(error, 0.9):.2f} px"
        )


def counts(clip: SyntheticVideo, checks: dict) -> tuple[int, int]:
    """The clip's carrying tracks against itself on grey flow alone and with the colour fallback (as
    `robust_motion_fidelity` finds them with and without `min_tracks`); the ground-truth check of the tracks scored
    goes to `checks` (grey's when it keeps enough, colour's when the fallback took over)."""
    flow = video_flow(clip.frames)
    grey = len(carrying_tracks(flow)[0])
    (tracks, _), *_ = colour_fallback(flow, flow, carrying_tracks, MIN_TRACKS)
    if len(tracks) >= MIN_TRACKS:
        checks["grey" if grey >= MIN_TRACKS else "colour"].append(truth_check(clip, tracks))
    return grey, len(tracks)


def truth_check(clip: SyntheticVideo, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per track (n, f, 2, in the clip's pixels: the clips here are at most 128 px, flow's working size): whether it
    follows a true path; per track starting inside an object (its mask shrunk by 2 px), its mean distance from that
    object's path. The true paths from a start p: the camera's (an affine map per frame), and each object's
    translation p + c_k - c_0 (which the scenes' rotating, pulsing or squashing bodies only approximate)."""
    start = tracks[:, 0].astype(np.float64)
    camera = np.einsum("kij,nj->nki", clip.camera, np.concatenate([start, np.ones((len(start), 1))], axis=1))
    objects = start[:, None, None] + (clip.trajectories - clip.trajectories[:, :1])[None]
    paths = np.concatenate([camera[:, None], objects], axis=1)  # (n, 1 + objects, f, 2)
    best = [step_weighted_correlation(track[None], path).max() for track, path in zip(tracks, paths, strict=True)]
    inside = cv2.erode(clip.masks[0].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    pixel = np.clip(np.round(start).astype(int), 0, np.array(inside.shape[::-1]) - 1)
    errors = []
    for number in np.flatnonzero(inside[pixel[:, 1], pixel[:, 0]]):
        nearest = np.argmin(np.linalg.norm(clip.trajectories[:, 0] - start[number], axis=1))
        errors.append(np.linalg.norm(tracks[number] - objects[number, nearest], axis=1).mean())
    return np.array(best) >= FOLLOWS, np.array(errors)


def spread(found: tuple[int, ...]) -> str:
    return (
        f"fewest {min(found)}, 10th percentile {np.quantile(found, 0.1):.0f}, median {np.median(found):.0f}, "
        f"below {MIN_TRACKS}: {sum(count < MIN_TRACKS for count in found)}"
    )


def _first(clip: SyntheticVideo, count: int) -> SyntheticVideo:
    """The clip's first `count` frames with their ground truth."""
    return replace(
        clip,
        **{name: getattr(clip, name)[:count] for name in ("frames", "camera", "masks")},
        **{name: getattr(clip, name)[:, :count] for name in ("trajectories", "sizes", "angles", "stretch", "arm_tips")},
    )


if __name__ == "__main__":
    main()
