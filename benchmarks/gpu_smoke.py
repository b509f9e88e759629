"""Every text-to-video method end to end at real size, random weights: seconds per step and peak GPU
memory per phase, through the same code path as `sma transfer` (`sma.runs.transfer`).

    python benchmarks/gpu_smoke.py [--size real|tiny] [--methods vmc motiondirector dmt] [--out DIR]

`--size real` (the default; needs a CUDA GPU) writes a model folder with ZeroScope's UNet
configuration (1.41 B parameters), Stable Diffusion's VAE and an OpenCLIP-H-sized text encoder,
all random, in fp16 safetensors; nothing is downloaded. Each method runs its recipe
(configs/<method>-zeroscope.yaml) with a few steps on a synthetic 16-frame 320x576 clip
(DMT: 24 frames, its recipe's size). `--size tiny` runs the same on the tiny model, on the CPU,
to check the script. Any error stops the run with a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # real-size configurations live with the structure tests

SHORT_RUN = {  # a few steps of each phase; the recipe keeps everything else
    "train.steps": 4,
    "train.checkpoint_every": 4,
    "generate.steps": 4,
    "generate.inversion_steps": 4,
}
DMT_SHORT_RUN = {"generate.steps": 4, "generate.inversion_steps": 4, "dmt.guidance_fraction": 0.5, "dmt.iterations": 2}
# (on the CPU, DMT's fp16 guidance falls back to fp32 by itself)


def build_real_text_to_video(folder: Path) -> Path:
    """ZeroScope-sized random model in diffusers layout, fp16 safetensors."""
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from real_scale import ZEROSCOPE_UNET
    from transformers import CLIPTextModel

    from sma.backbones.tiny import clip_text_config, save_model_folder, write_clip_tokenizer

    torch.manual_seed(0)
    tokenizer = write_clip_tokenizer(folder / "tokenizer", max_length=77)
    text_encoder = CLIPTextModel(  # OpenCLIP ViT-H/14's text tower, as in ZeroScope
        clip_text_config(tokenizer, 1024, 23, 16, vocab_size=49408, intermediate_size=4096, hidden_act="gelu")
    )
    vae = AutoencoderKL(  # Stable Diffusion's VAE
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
    )
    unet = UNet3DConditionModel(**ZEROSCOPE_UNET)
    networks = [network.half() for network in (unet, vae, text_encoder)]
    return save_model_folder(folder, "TextToVideoSDPipeline", *networks)


def run_method(method: str, model: Path, reference: Path, out: Path, size: str) -> dict:
    from sma.recipes import load_config
    from sma.runs import transfer

    overrides = {"model": str(model), "prompt": "a red circle", "targets": ["a blue square"]}
    overrides |= DMT_SHORT_RUN if method == "dmt" else SHORT_RUN
    if size == "tiny":
        overrides |= {"video.height": 32, "video.width": 32, "train.mixed_precision": "no"}
    config = load_config(ROOT / "configs" / f"{method}-zeroscope.yaml", overrides)
    start = time.perf_counter()
    run_dir = transfer(config, reference, out / method, overwrite=True)
    wall = time.perf_counter() - start
    phases = json.loads((run_dir / "metrics.json").read_text())["phases"]
    return {"method": method, "frames": config.video.frames, "wall_s": wall, "phases": phases}


def table(results: list[dict]) -> str:
    phases = ("train", "invert", "sample", "generate", "decode")
    header = f"{'method':<16}{'frames':>7}{'train s/step':>14}" + "".join(f"{p + ' GiB':>14}" for p in phases)
    lines = [header + f"{'generate s':>12}{'wall s':>9}"]
    for result in results:
        record = result["phases"]
        train = record.get("train", {}).get("seconds_per_step")
        cells = "".join(f"{record.get(p, {}).get('peak_memory_gib', float('nan')):>14.2f}" for p in phases)
        lines.append(
            f"{result['method']:<16}{result['frames']:>7}{(f'{train:.3f}' if train else '-'):>14}{cells}"
            f"{record.get('generate', {}).get('seconds', float('nan')):>12.1f}{result['wall_s']:>9.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("real", "tiny"), default="real")
    parser.add_argument("--methods", nargs="+", default=["vmc", "motiondirector", "dmt"])
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    arguments = parser.parse_args()
    if arguments.size == "real" and not torch.cuda.is_available():
        print("gpu_smoke: --size real needs a CUDA GPU (use --size tiny to check the script on the CPU)")
        return 2
    from sma.backbones.tiny import TinySizes, build_text_to_video
    from sma.video import MovingObject, synthetic_video, write_video

    work = arguments.out or Path(tempfile.mkdtemp(prefix="sma-gpu-smoke-"))
    start = time.perf_counter()
    if arguments.size == "real":
        model = build_real_text_to_video(work / "model")
    else:  # three resolutions, so that up_blocks.1 has the upsampler DMT reads
        model = build_text_to_video(work / "model", TinySizes(unet_channels=(16, 16, 32)))
    print(f"model written in {time.perf_counter() - start:.0f} s: {model}")
    height, width = (320, 576) if arguments.size == "real" else (32, 32)
    clip = synthetic_video(MovingObject("circle", "red", "zigzag"), num_frames=24, height=height, width=width)
    reference = write_video(work / "reference.mp4", clip.frames, overwrite=True)
    results = [run_method(method, model, reference, work / "runs", arguments.size) for method in arguments.methods]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"\n{device}, {arguments.size} size, {time.perf_counter() - start:.0f} s in all")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
