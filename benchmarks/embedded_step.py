"""Seconds per denoiser step of the embedded model's training, per world and UNet width.

The step of `sma.embedded.train.train_denoiser` itself (UNet3D + text encoder forward and
backward, AdamW, EMA) on the world's clips: the simple world at 8 frames, the hard world at
16, 64x64 pixels (16x16 latents), batch 8, after a warm-up step. The shipped model's run gives
the scale of an idle machine: 3006 steps of the simple world in about 70 minutes on 2 idle
cores (its card), so the ratio of a hard step to a simple step measured side by side, under
whatever load, carries over.

    python benchmarks/embedded_step.py [--steps 4] [--threads 1] [--widths 32,64,64 48,96,96]
        [--device cuda] [--profile]

`--profile` also prints where the last hard-world step spends its time (torch.profiler's table).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def seconds_per_step(
    world: str, widths: str, steps: int, batch: int, device: str = "cpu", profile: bool = False
) -> tuple[float, int]:
    """Mean seconds of `steps` denoiser steps after one warm-up step, and the UNet's parameter count."""
    from sma.backbones.text_to_video import TextToVideoModel
    from sma.embedded.architecture import build_text_to_video
    from sma.embedded.train import encode_dataset, latent_foreground, make_dataset, model_sizes, train_denoiser
    from sma.embedded.world import vocabulary

    rng = np.random.default_rng(0)
    folder = build_text_to_video(
        Path(tempfile.mkdtemp()) / world, model_sizes(world, widths), words=vocabulary(world=world)
    )
    model = TextToVideoModel.from_pretrained(str(folder), device)
    videos, masks, prompts = make_dataset(2 * batch, rng, world)
    latents = encode_dataset(model, videos)
    weights = latent_foreground(masks, videos.shape[2] // latents.shape[-2]).to(device)

    on_gpu = torch.device(device).type == "cuda"

    def run(count: int) -> float:
        started = time.perf_counter()
        train_denoiser(model, latents, weights, prompts, count, batch, time.time() + 3600, rng, lambda: None)
        if on_gpu:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    run(1)
    seconds = run(steps) / steps
    if profile:
        with torch.profiler.profile() as profiler:
            run(1)
        sort_by = "cuda_time_total" if on_gpu else "cpu_time_total"
        print(profiler.key_averages().table(sort_by=sort_by, row_limit=15, max_name_column_width=50))
    return seconds, sum(parameter.numel() for parameter in model.unet.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--widths", nargs="+", default=["32,64,64", "48,96,96"], help="UNet widths to time")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="print where a hard-world step spends its time")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    print(
        f"torch {torch.__version__}, {arguments.threads} thread(s), batch {arguments.batch}, {arguments.steps} steps, "
        f"on {arguments.device}"
    )
    simple, _ = seconds_per_step("simple", "32,64,64", arguments.steps, arguments.batch, arguments.device)
    print(f"simple world, 8 frames,  UNet 32,64,64: {simple:6.2f} s/step (ratio 1.00)")
    for widths in arguments.widths:
        hard, parameters = seconds_per_step(
            "hard", widths, arguments.steps, arguments.batch, arguments.device, arguments.profile
        )
        print(
            f"hard world, 16 frames, UNet {widths}: {hard:6.2f} s/step (ratio {hard / simple:.2f}), "
            f"{parameters / 1e6:.2f} M UNet parameters"
        )


if __name__ == "__main__":
    main()
