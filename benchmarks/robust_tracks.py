"""How many tracks the robust motion fidelity rests on, on the hard world's scenes at 64 and 128 px and on issue
46's clip (a triangle circling over panning stripes, 16 of 24 frames), each against itself.

Prints, per size, the fewest, the 10th percentile and the median of the reference's carrying tracks over the
scenes, how many fall below `sma.evaluation.MIN_TRACKS`, and the triangle's count. Run it with another checkout's
`src` on PYTHONPATH to compare trackers.

    python benchmarks/robust_tracks.py [--scenes 20] [--seed 11]
"""

from __future__ import annotations

import argparse

import numpy as np

from sma.embedded.world import HardWorld
from sma.evaluation import MIN_TRACKS
from sma.metrics import robust_motion_fidelity, video_flow
from sma.video import MovingObject, synthetic_video

TRIANGLE = MovingObject("triangle", "green", "circular", start=(0.5, 0.25), end=(0.5, 0.5), size=0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    arguments = parser.parse_args()
    for size in (64, 128):
        rng = np.random.default_rng(arguments.seed)
        counts = []
        for _ in range(arguments.scenes):
            flow = video_flow(HardWorld(size=size).random_clip(rng)[0].frames)
            counts.append(robust_motion_fidelity(flow, flow).reference_tracks)
        triangle = synthetic_video(
            TRIANGLE, background="striped", pan=(0.2, 0.0), num_frames=24, height=size, width=size
        ).frames[:16]
        print(
            f"{size} px: {arguments.scenes} hard-world scenes, tracks fewest {min(counts)}, 10th percentile "
            f"{np.quantile(counts, 0.1):.0f}, median {np.median(counts):.0f}, below {MIN_TRACKS}: "
            f"{sum(count < MIN_TRACKS for count in counts)}; triangle over panning stripes "
            f"{robust_motion_fidelity(triangle, triangle).reference_tracks}"
        )


if __name__ == "__main__":
    main()
