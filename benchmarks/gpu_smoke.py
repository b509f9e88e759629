"""Every text-to-video method end to end at real size, random weights: seconds per step and peak GPU
memory per phase, through the same code path as `sma transfer` (`sma.runs.transfer`).

    python benchmarks/gpu_smoke.py [--size real|tiny] [--backbones zeroscope animatediff]
                                   [--methods vmc motiondirector dmt] [--out DIR]

`--size real` (the default; needs a CUDA GPU) writes, all random, in fp16 safetensors (nothing is
downloaded): for `zeroscope`, a model folder with ZeroScope's UNet configuration (1.41 B
parameters), Stable Diffusion's VAE and an OpenCLIP-H-sized text encoder; for `animatediff`,
Stable Diffusion 1.5 (UNet, VAE, CLIP ViT-L text encoder) and a motion adapter configured as
guoyww/animatediff-motion-adapter-v1-5-3 (1.28 B parameters in the motion UNet). Each method
runs its recipe (configs/<method>-<backbone>.yaml) with a few steps on a synthetic clip of the
recipe's size (ZeroScope: 16 frames 320x576, DMT 24 frames; AnimateDiff: 16 frames 512x512).
`--size tiny` runs the same on tiny models, on the CPU, to check the script. Any error stops
the run with a non-zero exit.
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
BACKBONE_METHODS = {"zeroscope": ("vmc", "motiondirector", "dmt"), "animatediff": ("vmc", "motiondirector")}
REFERENCE_SIZE = {"zeroscope": (320, 576), "animatediff": (512, 512)}  # height, width of the recipes


def stable_diffusion_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
    )


def build_real_text_to_video(folder: Path) -> dict:
    """ZeroScope-sized random model in diffusers layout, fp16 safetensors; the recipe keys that name it."""
    from diffusers import UNet3DConditionModel
    from real_scale import ZEROSCOPE_UNET
    from transformers import CLIPTextModel

    from sma.backbones.tiny import clip_text_config, save_model_folder, write_clip_tokenizer

    torch.manual_seed(0)
    tokenizer = write_clip_tokenizer(folder / "tokenizer", max_length=77)
    text_encoder = CLIPTextModel(  # OpenCLIP ViT-H/14's text tower, as in ZeroScope
        clip_text_config(tokenizer, 1024, 23, 16, vocab_size=49408, intermediate_size=4096, hidden_act="gelu")
    )
    unet = UNet3DConditionModel(**ZEROSCOPE_UNET)
    networks = [network.half() for network in (unet, stable_diffusion_vae(), text_encoder)]
    return {"model": str(save_model_folder(folder, "TextToVideoSDPipeline", *networks))}


def build_real_animatediff(folder: Path) -> dict:
    """SD-1.5-sized random model and a v1-5-3-sized random motion adapter, fp16 safetensors; the recipe keys."""
    from diffusers import MotionAdapter, UNet2DConditionModel
    from real_scale import ANIMATEDIFF_V153_ADAPTER, SD15_UNET
    from transformers import CLIPTextModel

    from sma.backbones.tiny import clip_text_config, save_model_folder, write_clip_tokenizer

    torch.manual_seed(0)
    tokenizer = write_clip_tokenizer(folder / "model" / "tokenizer", max_length=77)
    text_encoder = CLIPTextModel(  # CLIP ViT-L/14's text tower, as in Stable Diffusion 1.x
        clip_text_config(tokenizer, 768, 12, 12, vocab_size=49408, intermediate_size=3072, hidden_act="quick_gelu")
    )
    unet = UNet2DConditionModel(**SD15_UNET)
    networks = [network.half() for network in (unet, stable_diffusion_vae(), text_encoder)]
    model = save_model_folder(folder / "model", "StableDiffusionPipeline", *networks)
    MotionAdapter.from_config(ANIMATEDIFF_V153_ADAPTER).half().save_pretrained(folder / "motion_adapter")
    return {"model": str(model), "motion_adapter": str(folder / "motion_adapter")}


def build_tiny(backbone: str, folder: Path) -> dict:
    from sma.backbones.tiny import TinySizes, build_motion_adapter, build_text_to_image, build_text_to_video

    if backbone == "animatediff":
        adapter = build_motion_adapter(folder / "motion_adapter")
        return {"model": str(build_text_to_image(folder / "model")), "motion_adapter": str(adapter)}
    # three resolutions, so that up_blocks.1 has the upsampler DMT reads
    return {"model": str(build_text_to_video(folder, TinySizes(unet_channels=(16, 16, 32))))}


def run_method(method: str, backbone: str, model: dict, reference: Path, out: Path, size: str) -> dict:
    from sma.recipes import load_config
    from sma.runs import transfer

    overrides = {**model, "prompt": "a red circle", "targets": ["a blue square"]}
    overrides |= DMT_SHORT_RUN if method == "dmt" else SHORT_RUN
    if size == "tiny":
        overrides |= {"video.height": 32, "video.width": 32, "train.mixed_precision": "no"}
    config = load_config(ROOT / "configs" / f"{method}-{backbone}.yaml", overrides)
    start = time.perf_counter()
    run_dir = transfer(config, reference, out / f"{method}-{backbone}", overwrite=True)
    wall = time.perf_counter() - start
    phases = json.loads((run_dir / "metrics.json").read_text())["phases"]
    size_label = f"{config.video.frames}x{config.video.height}x{config.video.width}"
    return {"method": f"{method}/{backbone}", "size": size_label, "wall_s": wall, "phases": phases}


def table(results: list[dict]) -> str:
    phases = ("train", "invert", "sample", "generate", "decode")
    header = f"{'method':<26}{'clip':>12}{'train s/step':>14}" + "".join(f"{p + ' GiB':>14}" for p in phases)
    lines = [header + f"{'generate s':>12}{'wall s':>9}"]
    for result in results:
        record = result["phases"]
        train = record.get("train", {}).get("seconds_per_step")
        cells = "".join(f"{record.get(p, {}).get('peak_memory_gib', float('nan')):>14.2f}" for p in phases)
        lines.append(
            f"{result['method']:<26}{result['size']:>12}{(f'{train:.3f}' if train else '-'):>14}{cells}"
            f"{record.get('generate', {}).get('seconds', float('nan')):>12.1f}{result['wall_s']:>9.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("real", "tiny"), default="real")
    parser.add_argument("--backbones", nargs="+", choices=tuple(BACKBONE_METHODS), default=list(BACKBONE_METHODS))
    parser.add_argument("--methods", nargs="+", default=["vmc", "motiondirector", "dmt"])
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    arguments = parser.parse_args()
    if arguments.size == "real" and not torch.cuda.is_available():
        print("gpu_smoke: --size real needs a CUDA GPU (use --size tiny to check the script on the CPU)")
        return 2
    from sma.video import MovingObject, synthetic_video, write_video

    work = arguments.out or Path(tempfile.mkdtemp(prefix="sma-gpu-smoke-"))
    start = time.perf_counter()
    results = []
    for backbone in arguments.backbones:
        built, tiny = time.perf_counter(), arguments.size == "tiny"
        build_real = {"zeroscope": build_real_text_to_video, "animatediff": build_real_animatediff}[backbone]
        model = build_tiny(backbone, work / backbone) if tiny else build_real(work / backbone)
        print(f"{backbone} written in {time.perf_counter() - built:.0f} s: {model}")
        height, width = (32, 32) if tiny else REFERENCE_SIZE[backbone]
        clip = synthetic_video(MovingObject("circle", "red", "zigzag"), num_frames=24, height=height, width=width)
        reference = write_video(work / f"reference-{backbone}.mp4", clip.frames, overwrite=True)
        for method in arguments.methods:
            if method in BACKBONE_METHODS[backbone]:
                results.append(run_method(method, backbone, model, reference, work / "runs", arguments.size))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"\n{device}, {arguments.size} size, {time.perf_counter() - start:.0f} s in all")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
