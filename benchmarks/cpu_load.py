"""Seconds per demo training step on the CPU alone and beside one competing CPU-bound process, per thread setting.

The step is `sma demo --world hard`'s: VMC with SMA on the embedded hard model, 16 frames of 64x64 (the loss, its
backward and AdamW's step). Each setting runs in a process of its own (OpenMP reads its wait policy when torch
loads): a warm-up step, `--steps` steps alone, then as many beside a process that busy-loops on one core; it prints
both medians and their ratio. Run it on a machine otherwise idle, or say what else ran (`uptime` is printed).

    python benchmarks/cpu_load.py [--steps 5] [--settings torch,sma,sma-1-thread]

Settings: `torch`: torch's own (a thread per core; OpenMP's threads spin while they wait for work); `sma`: what
importing sma sets when the environment does not (OMP_WAIT_POLICY=PASSIVE: waiting threads sleep); `sma-1-thread`:
that and one thread (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SETTINGS = {  # environment variables, and whether torch loads before sma (so that sma sets nothing)
    "torch": ({}, True),
    "sma": ({}, False),
    "sma-1-thread": ({"OMP_NUM_THREADS": "1"}, False),
}


def busy() -> None:
    """The competing process: one core's worth of pure-Python work until killed."""
    while True:
        pass


def measure(steps: int, torch_first: bool) -> dict:
    """In this process: seconds of `steps` demo training steps alone, then beside a busy process."""
    if not torch_first:
        import sma  # noqa: F401  (first: its thread settings apply)
    import torch

    from sma.demo import CASES
    from sma.embedded import embedded_model
    from sma.embedded.world import run_config
    from sma.methods import build_method
    from sma.runs import load_reference

    case = CASES["hard"]
    clip = case.clip()
    folder = os.environ["SMA_BENCH_TMP"]
    reference = os.path.join(folder, "reference.mp4")
    from sma.video import write_video

    write_video(reference, clip.frames, overwrite=True)
    config = run_config(
        embedded_model("hard"),
        clip.prompt,
        [case.targets[0].prompt],
        world="hard",
        steps=10,
        seed=0,
        sma=True,
        sampling_steps=2,
        guidance_scale=7.5,
    )
    method = build_method(config)
    parameters = list(method.prepare().values())
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    method.model.unet.train()
    latents = method.model.encode_video(load_reference(reference, config))
    text = method.model.encode_prompts([clip.prompt])

    def step(index: int) -> float:
        started = time.perf_counter()
        loss = method.loss(latents, text, torch.Generator().manual_seed(index))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - started

    step(0)
    alone = [step(index) for index in range(1, steps + 1)]
    competitor = subprocess.Popen([sys.executable, __file__, "--busy"])
    try:
        time.sleep(1.0)  # let it take its core
        loaded = [step(index) for index in range(1, steps + 1)]
    finally:
        competitor.kill()
        competitor.wait()
    return {"threads": torch.get_num_threads(), "alone": statistics.median(alone), "loaded": statistics.median(loaded)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.busy:
        busy()
    if arguments.measure:
        print(json.dumps(measure(arguments.steps, os.environ["SMA_BENCH_TORCH_FIRST"] == "1")))
        return
    print(
        f"{os.cpu_count()} cores; uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}"
    )
    for name in arguments.settings.split(","):
        variables, torch_first = SETTINGS[name]
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("OMP_", "GOMP_"))}
        with tempfile.TemporaryDirectory() as folder:
            environment |= variables | {"SMA_BENCH_TMP": folder, "SMA_BENCH_TORCH_FIRST": str(int(torch_first))}
            command = [sys.executable, __file__, "--measure", "--steps", str(arguments.steps)]
            printed = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
        result = json.loads(printed.strip().splitlines()[-1])
        print(
            f"{name:13s} {result['threads']} thread(s): alone {result['alone']:.2f} s/step, beside one busy process "
            f"{result['loaded']:.2f} s/step, ratio {result['loaded'] / result['alone']:.2f}"
        )


if __name__ == "__main__":
    main()
