"""Regional compilation against eager: compile time apart from the time per training step, through VMC's loss.

    python benchmarks/compile_step.py [--size tiny|real] [--steps 10] [--backend inductor] [--checkpointing true]

Each variant (eager, then compiled: `LatentVideoModel.compile_layers`, one `torch.compile` per repeated block)
trains a fresh model: its first step (compilation, allocation, kernel selection) is timed alone, the median of
the next `--steps` is the step time, and the compile time is the compiled first step less the eager one. Both
variants draw the same noise, so their first losses must agree to float tolerance (printed). `--size real` (a CUDA
GPU) writes ZeroScope's UNet3D with random weights (benchmarks/gpu_smoke.py's builder) and trains 16 frames of
320x576 in bf16, frozen weights in bf16; `--size tiny` runs the tiny model on the CPU (8 frames of 32x32 latents),
where inductor takes minutes: `--backend aot_eager` checks the script in seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_model(size: str, folder: Path) -> tuple[Path, tuple[int, int, int]]:
    """The model folder and the latent (frames, height, width) to train on."""
    if size == "real":
        from gpu_smoke import build_real

        return build_real("zeroscope", folder)["model"], (16, 40, 72)
    from sma.embedded.architecture import build_text_to_video

    return build_text_to_video(folder / "model"), (8, 32, 32)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def train_steps(model_dir: Path, latent_size: tuple[int, int, int], compiled: bool, arguments) -> dict:
    """Seconds of the first step and of each later one, the first loss and the peak GPU memory of one variant."""
    from sma.methods import build_method
    from sma.recipes import load_config
    from sma.training import make_optimizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    overrides = {"method": "vmc", "model": str(model_dir), "train.gradient_checkpointing": arguments.checkpointing}
    config = load_config(overrides=overrides)
    method = build_method(config, device)
    parameters = list(method.prepare().values())
    model = method.model
    half = device == "cuda"
    if half:
        model.cast_frozen(torch.bfloat16)
    if arguments.checkpointing:
        model.enable_gradient_checkpointing()
    if compiled:
        model.compile_layers()
    model.unet.train()
    optimizer = make_optimizer(parameters, config.train)
    shape = (1, model.unet.config.in_channels, *latent_size)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    text = model.encode_prompts(["a red circle moving right"])
    model.move_encoders("cpu")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if half else nullcontext()
    if half:
        torch.cuda.reset_peak_memory_stats()
    seconds, first_loss = [], None
    for step in range(arguments.steps + 1):
        synchronize()
        start = time.perf_counter()
        torch.manual_seed(step)  # as the training loop does: dropout draws from the global generator
        with autocast:
            loss = method.loss(latents, text, torch.Generator(device=device).manual_seed(step))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        synchronize()
        seconds.append(time.perf_counter() - start)
        first_loss = loss.item() if first_loss is None else first_loss
    peak = torch.cuda.max_memory_allocated() / 2**30 if half else float("nan")
    return {"first": seconds[0], "step": statistics.median(seconds[1:]), "loss": first_loss, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "real"), default="tiny")
    parser.add_argument("--steps", type=int, default=10, help="steps after the first, for the median")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (SMA_COMPILE_BACKEND)")
    parser.add_argument("--checkpointing", choices=("true", "false"), default="true", help="every layer recomputed")
    arguments = parser.parse_args()
    arguments.checkpointing = arguments.checkpointing == "true"
    if arguments.size == "real" and not torch.cuda.is_available():
        sys.exit("compile_step: --size real needs a CUDA GPU")
    os.environ["SMA_COMPILE_BACKEND"] = arguments.backend
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"{device}; torch {torch.__version__}; backend {arguments.backend}; checkpointing {arguments.checkpointing}")
    model_dir, latent_size = build_model(arguments.size, Path(tempfile.mkdtemp(prefix="sma-compile-")))
    eager = train_steps(model_dir, latent_size, False, arguments)
    compiled = train_steps(model_dir, latent_size, True, arguments)
    print(f"latents {latent_size}, median of {arguments.steps} steps after the first")
    for name, result in (("eager", eager), ("compiled", compiled)):
        print(
            f"  {name:<9} first step {result['first']:8.2f} s   step {result['step']:7.3f} s   "
            f"peak {result['peak_gib']:6.2f} GiB   first loss {result['loss']:.6f}"
        )
    difference = abs(compiled["loss"] - eager["loss"]) / abs(eager["loss"])
    print(
        f"  compile time {compiled['first'] - eager['first']:.1f} s; step speed-up "
        f"{eager['step'] / compiled['step']:.2f}x; first losses differ by {difference:.1e} (relative)"
    )


if __name__ == "__main__":
    main()
