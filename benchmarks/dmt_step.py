"""Time per DMT guided step and peak memory with SMA in feature space on and off.

A guided step is what DMT does at each of its guided timesteps: the reference features (no
gradient), then `dmt.iterations` Adam iterations on the float32 latent, each a UNet forward
that stops after the last of the three official taps of up_blocks.1, and its backward.

On the CPU: the tiny real-layout model (three resolutions, so that up_blocks.1 has an
upsampler as in ZeroScope), (1, 4, 8, 32, 32) latents, fp32. With a CUDA GPU (`--zeroscope`):
a UNet3DConditionModel with ZeroScope's configuration and random weights, 24 frames at
320x576 (latents 40x72), for each `--precisions` entry: weights in that dtype (DMT's code loads
ZeroScope in fp16) and `dmt.precision` set to it (fp16: autocast and a gradient scaler).

    python benchmarks/dmt_step.py [--steps 5] [--iterations 10] [--threads 2] [--zeroscope]
        [--precisions fp16 bf16 fp32]

Each configuration runs in its own process, so peak memory (RSS on the CPU, allocator peak
on the GPU) belongs to that configuration alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def tiny_method(use_sma: bool, iterations: int, precision: str):
    from sma.embedded.architecture import TinySizes, build_text_to_video
    from sma.methods import build_method
    from sma.recipes import load_config

    folder = build_text_to_video(Path(tempfile.mkdtemp()) / "model", TinySizes(unet_channels=(16, 16, 32)))
    overrides = {"method": "dmt", "model": str(folder), "sma.enabled": use_sma, "dmt.iterations": iterations}
    method = build_method(load_config(overrides={**overrides, "dmt.precision": precision}))
    text = method.model.encode_prompts(["a red circle moving right"])
    return method, torch.randn(1, 4, 8, 32, 32), text


def zeroscope_method(use_sma: bool, iterations: int, precision: str):
    from diffusers import DDIMScheduler, UNet3DConditionModel

    from sma.backbones.text_to_video import TextToVideoModel
    from sma.config import PRECISIONS
    from sma.methods.dmt import DMT
    from sma.recipes import load_config

    device, dtype = torch.device("cuda"), PRECISIONS[precision]
    unet = UNet3DConditionModel().to(device, dtype)  # the defaults are ZeroScope's configuration
    unet.requires_grad_(False)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    model = TextToVideoModel(unet, None, None, None, scheduler, source="random ZeroScope-sized UNet")
    overrides = {"method": "dmt", "sma.enabled": use_sma, "sma.levels": 3, "dmt.iterations": iterations}
    config = load_config(overrides={**overrides, "dmt.precision": precision})
    text = torch.randn(1, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    return DMT(model, config), torch.randn(1, 4, 24, 40, 72, device=device), text


def measure(method, latents: torch.Tensor, text: torch.Tensor, steps: int) -> dict:
    """Median time of a guided step (after one warm-up) and peak memory."""
    generator = torch.Generator(device=latents.device).manual_seed(0)
    reference = torch.randn(latents.shape, generator=generator, device=latents.device)
    if latents.is_cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(steps + 1):
        t = torch.tensor(981 - 20 * step, device=latents.device)
        if latents.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        latents = method.guide(latents, t, reference, text, text, learning_rate=0.007)
        if latents.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if latents.is_cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "step_ms": 1e3 * statistics.median(times[1:]),
        "peak_mb": peak / 2**20 if latents.is_cuda else peak / 1024,
    }


def child(arguments: argparse.Namespace) -> None:
    torch.set_num_threads(arguments.threads)
    build = zeroscope_method if arguments.child == "zeroscope" else tiny_method
    method, latents, text = build(arguments.sma, arguments.iterations, arguments.precisions[0])
    print(json.dumps(measure(method, latents, text, arguments.steps)))


def run_child(kind: str, precision: str, use_sma: bool, arguments: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--precisions", precision, "--steps", str(arguments.steps)]
    command += ["--iterations", str(arguments.iterations), "--threads", str(arguments.threads)]
    command += ["--sma"] if use_sma else []
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="guided steps timed, after one warm-up")
    parser.add_argument("--iterations", type=int, default=10, help="Adam iterations per guided step (DMT: 10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--zeroscope", action="store_true", help="ZeroScope-sized UNet on a CUDA GPU")
    parser.add_argument("--precisions", nargs="+", default=["fp16", "bf16", "fp32"], help="dmt.precision on the GPU")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sma", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        return child(arguments)
    print(
        f"torch {torch.__version__}, {arguments.threads} threads, {arguments.iterations} Adam iterations per "
        f"guided step, median of {arguments.steps} guided steps after 1 warm-up"
    )
    rows = [("tiny", "fp32", "tiny model, CPU, fp32, (1, 4, 8, 32, 32) latents, three taps of up_blocks.1")]
    if arguments.zeroscope:
        if not torch.cuda.is_available():
            print("zeroscope: skipped, no CUDA GPU here")
        else:
            name = torch.cuda.get_device_name()
            rows += [
                ("zeroscope", precision, f"ZeroScope UNet, {name}, {precision}, (1, 4, 24, 40, 72)")
                for precision in arguments.precisions
            ]
    for kind, precision, label in rows:
        with_sma, without = run_child(kind, precision, True, arguments), run_child(kind, precision, False, arguments)
        print(f"dmt ({label})")
        print(f"  guided step with SMA  {with_sma['step_ms']:9.1f} ms   peak {with_sma['peak_mb']:9.0f} MB")
        print(f"  guided step without   {without['step_ms']:9.1f} ms   peak {without['peak_mb']:9.0f} MB")
        print(f"  ratio with/without    {with_sma['step_ms'] / without['step_ms']:9.2f}")


if __name__ == "__main__":
    main()
