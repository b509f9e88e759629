"""Time per training step and peak memory with SMA on and off, and SMA's share of a step.

On the CPU: the tiny real-layout model (VMC and MotionDirector, 8 frames 64x64). With a
CUDA GPU (`--zeroscope`): a UNet3DConditionModel with ZeroScope's configuration and random
weights, 24 frames at 320x576 (latents 40x72), bf16 autocast, gradient checkpointing, VMC's
trainable set; it must fit in 24 GB.

    python benchmarks/train_step.py [--steps 10] [--threads 2] [--zeroscope]

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


def measure_tiny(method_name: str, use_sma: bool, steps: int) -> dict:
    from sma.embedded.architecture import build_text_to_video
    from sma.methods import build_method
    from sma.recipes import load_config

    folder = build_text_to_video(Path(tempfile.mkdtemp()) / "model")
    rank = {"motiondirector.lora_rank": 8} if method_name == "motiondirector" else {}
    config = load_config(overrides={"method": method_name, "model": str(folder), "sma.enabled": use_sma, **rank})
    method = build_method(config)
    model = method.model
    parameters = list(method.prepare().values())
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    latents = torch.randn(1, 4, 8, 32, 32)
    text = model.encode_prompts(["a red circle moving right"])
    return timed_steps(lambda generator: method.loss(latents, text, generator)["loss"], optimizer, steps, latents)


def measure_zeroscope(use_sma: bool, steps: int) -> dict:
    from diffusers import DDPMScheduler, UNet3DConditionModel

    from sma.motion import predict_x0
    from sma.objectives import vmc_loss
    from sma.spectral import SpectralMotionAlignment

    device = torch.device("cuda")
    unet = UNet3DConditionModel().to(device)  # the defaults are ModelScope's / ZeroScope's configuration
    unet.requires_grad_(False)
    unet.enable_gradient_checkpointing()
    unet.train()
    parameters = [
        parameter
        for name, module in unet.named_modules()
        if "temp_attentions" in name and name.endswith(("to_q", "to_k", "to_v"))
        for parameter in module.parameters()
    ]
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    latents = torch.randn(1, 4, 24, 40, 72, device=device)
    text = torch.randn(1, 77, unet.config.cross_attention_dim, device=device)
    sma = SpectralMotionAlignment(levels=3) if use_sma else None

    def loss(generator):
        noise = torch.randn(latents.shape, generator=generator, device=device)
        timesteps = torch.randint(0, 1000, (1,), generator=generator, device=device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            output = unet(noisy, timesteps, encoder_hidden_states=text).sample
        total = vmc_loss(output, noise)
        if sma is not None:
            total = total + sma(latents, predict_x0(output, noisy, timesteps, scheduler))
        return total

    torch.cuda.reset_peak_memory_stats()
    result = timed_steps(loss, optimizer, steps, latents)
    result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def timed_steps(loss_of, optimizer, steps: int, latents: torch.Tensor) -> dict:
    times = []
    for step in range(steps + 2):  # two warm-up steps
        generator = torch.Generator(device=latents.device).manual_seed(step)
        if latents.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = loss_of(generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if latents.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {
        "step_ms": 1e3 * statistics.median(times[2:]),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def sma_alone_ms(shape: tuple[int, ...], device: str, repeats: int = 20) -> float:
    """Forward + backward of the SMA loss alone at the latent shape: its share of a step."""
    from sma.spectral import SpectralMotionAlignment

    loss = SpectralMotionAlignment(levels=3 if shape[2] > 8 else 2)
    target = torch.randn(shape, device=device)
    prediction = torch.randn(shape, device=device, requires_grad=True)
    times = []
    for _ in range(repeats + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss(target, prediction).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times[2:])


def child(arguments: argparse.Namespace) -> None:
    torch.set_num_threads(arguments.threads)
    if arguments.child == "zeroscope":
        result = measure_zeroscope(arguments.sma, arguments.steps)
    else:
        result = measure_tiny(arguments.child, arguments.sma, arguments.steps)
    print(json.dumps(result))


def run_child(kind: str, use_sma: bool, arguments: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--steps", str(arguments.steps)]
    command += ["--threads", str(arguments.threads)] + (["--sma"] if use_sma else [])
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--zeroscope", action="store_true", help="ZeroScope-sized UNet on a CUDA GPU")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sma", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        return child(arguments)
    torch.set_num_threads(arguments.threads)
    print(f"torch {torch.__version__}, {arguments.threads} threads, median of {arguments.steps} steps after 2 warm-up")
    rows = [("vmc", "tiny model, CPU, (1, 4, 8, 32, 32) latents"), ("motiondirector", "tiny model, CPU")]
    if arguments.zeroscope:
        if not torch.cuda.is_available():
            print("zeroscope: skipped, no CUDA GPU here")
        else:
            rows.append(("zeroscope", f"ZeroScope UNet, {torch.cuda.get_device_name()}, bf16, checkpointing"))
    for kind, label in rows:
        with_sma, without = run_child(kind, True, arguments), run_child(kind, False, arguments)
        shape = (1, 4, 24, 40, 72) if kind == "zeroscope" else (1, 4, 8, 32, 32)
        alone = sma_alone_ms(shape, "cuda" if kind == "zeroscope" else "cpu")
        print(f"{kind} ({label})")
        print(f"  step with SMA   {with_sma['step_ms']:9.1f} ms   peak {with_sma['peak_mb']:9.0f} MB")
        print(f"  step without    {without['step_ms']:9.1f} ms   peak {without['peak_mb']:9.0f} MB")
        print(
            f"  SMA loss alone  {alone:9.2f} ms   = {100 * alone / with_sma['step_ms']:.1f}% of a step "
            f"(step ratio with/without {with_sma['step_ms'] / without['step_ms']:.2f})"
        )


if __name__ == "__main__":
    main()
