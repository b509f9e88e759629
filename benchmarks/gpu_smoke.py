"""Every method end to end at real size, random weights: seconds per step and peak GPU memory per phase,
through the same code path as `sma transfer` (`sma.runs.transfer`).

    python benchmarks/gpu_smoke.py [--size real|tiny] [--methods NAME ...] [--train-steps N] [--json FILE] [--profile]
        [--variants recipe no-checkpointing budget compile compile+budget]

`--size real` (the default; needs a CUDA GPU) writes model folders with random weights in fp16 safetensors,
nothing downloaded: ZeroScope's UNet3D configuration (1.41 B parameters) with Stable Diffusion's VAE and an
OpenCLIP-H-sized text encoder, for VMC, MotionDirector (16 frames 320x576) and DMT (24 frames); Stable
Diffusion 1.5 (UNet 0.86 B, CLIP-L text encoder) and ControlNet-Depth (0.36 B) for Tune-A-Video and
ControlVideo (8 frames 512x512, the issue's targets), and with a v1-5-3-sized AnimateDiff motion adapter for
VMC and MotionDirector on AnimateDiff (16 frames 512x512); Show-1's base UNet (1.73 B; a 2-layer T5 of
T5-XXL's width stands in for the 4.7 B encoder) for VMC on Show-1 (8 frames 40x64, pixels); Wan 2.1 T2V 1.3B's
transformer (1.42 B) and VAE in bf16 (a 2-layer UMT5 of umt5-xxl's width stands in for the 5.7 B encoder) for
motionlora (33 frames 480x832) and for flowmotion (49 frames 480x720, beside plain sampling of the same size);
Wan 2.2 TI2V-5B's transformer (5.0 B) and Wan 2.2 VAE in bf16 for motionlora and flowmotion from an image (49 frames
at its native 704x1280; the picture is the reference's last frame), the training's peak held against 24 GB, the
consumer-card target.
Not run unless named (each writes a 14 B expert of 28 GB in bf16: minutes to build), Wan 2.2 A14B, T2V and I2V, for
motionlora (both experts' LoRAs) and flowmotion (49 frames 480x832): the high-noise expert's weights serve as the
low-noise expert too (`transformer_2` a link to `transformer/`: the same sizes and the same swaps, half the disk);
the peak of each phase is one expert on the card, the other on the CPU, held against one 80 GB card.
Not run unless named, `vmc-show1-interp` adds Show-1's interpolation stage at the base's size (7 input
channels) to generation, 8 -> 29 frames (phase "cascade"). Each method runs its recipe with a few steps of
each phase on a synthetic clip (its own frames as ControlVideo's depth maps). `--size tiny` runs the same on
tiny models on the CPU, to check the script. A method that fails is reported with its traceback and the others
still run (one GPU session is short); any failure makes the exit non-zero.
`--json` rewrites FILE after each method, so a run cut short keeps what it measured.
`--variants` runs each method once per variant: its recipe, without checkpointing, with the memory budget
(`train.gradient_checkpointing: budget`: the card less 10%; the plan is printed under the row), with regional
compilation (`train.compile`, `generate.compile`; the first step's compilation is in the mean s/step:
benchmarks/compile_step.py times it apart), or both; zero-shot methods take the generation keys alone, DMT the
checkpointing of its guidance (`dmt.gradient_checkpointing`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # real-size configurations and tiny builders live with the tests

RECIPES = {  # method: (recipe, backbone, frames, real height and width)
    "vmc": ("vmc-zeroscope", "zeroscope", 16, (320, 576)),
    "motiondirector": ("motiondirector-zeroscope", "zeroscope", 16, (320, 576)),
    "dmt": ("dmt-zeroscope", "zeroscope", 24, (320, 576)),
    "tuneavideo": ("tuneavideo-sd15", "sd15", 8, (512, 512)),
    "controlvideo": ("controlvideo-sd15", "sd15", 8, (512, 512)),
    "vmc-show1": ("vmc-show1", "show1", 8, (40, 64)),
    "vmc-animatediff": ("vmc-animatediff", "animatediff", 16, (512, 512)),
    "motiondirector-animatediff": ("motiondirector-animatediff", "animatediff", 16, (512, 512)),
    "motionlora-wan": ("motionlora-wan-1.3b", "wan", 33, (480, 832)),
    "flowmotion-wan": ("flowmotion-wan-1.3b", "wan", 49, (480, 720)),
    "motionlora-wan2.2-ti2v": ("motionlora-wan2.2-ti2v-5b", "wan-ti2v", 49, (704, 1280)),
    "flowmotion-wan2.2-ti2v": ("flowmotion-wan2.2-ti2v-5b", "wan-ti2v", 49, (704, 1280)),
    "vmc-show1-interp": ("vmc-show1", "show1-cascade", 8, (40, 64)),
    "motionlora-wan2.2-t2v-a14b": ("motionlora-wan2.2-t2v-a14b", "wan-a14b", 49, (480, 832)),
    "flowmotion-wan2.2-t2v-a14b": ("flowmotion-wan2.2-t2v-a14b", "wan-a14b", 49, (480, 832)),
    "motionlora-wan2.2-i2v-a14b": ("motionlora-wan2.2-i2v-a14b", "wan-i2v-a14b", 49, (480, 832)),
    "flowmotion-wan2.2-i2v-a14b": ("flowmotion-wan2.2-i2v-a14b", "wan-i2v-a14b", 49, (480, 832)),
}
A14B = tuple(name for name in RECIPES if name.endswith("-a14b"))
OPTIONAL = ("vmc-show1-interp", *A14B)  # run only when named in --methods
IMAGE_BACKBONES = ("wan-ti2v", "wan-i2v-a14b")  # the reference's last frame is the picture every target starts from
ONE_CARD_GIB = 80  # Wan 2.2 A14B: one expert at a time on one 80 GB card
CASCADE_SHORT_RUN = {"show1.stages": "interp", "show1.interp_steps": 4}
SHORT_RUN = {"generate.steps": 4, "generate.inversion_steps": 4}
DMT_SHORT_RUN = {"generate.steps": 4, "generate.inversion_steps": 4, "dmt.guidance_fraction": 0.5, "dmt.iterations": 2}
# (on the CPU, DMT's fp16 guidance falls back to fp32 by itself)
# FlowMotion: the official share of guided steps (10 of 50), and plain sampling of the same size (the untuned
# baseline: the same Euler steps, nothing guided) in the same run, for the ratio of seconds and of peak memory
FLOWMOTION_SHORT_RUN = {"generate.steps": 10, "flowmotion.guidance_steps": 2, "generate.untuned": True}
# --variants: each method's recipe as it is, and with the speed options (sma.memory_budget, regional compilation);
# the training keys only on trained methods; DMT takes the checkpointing as dmt.gradient_checkpointing and no
# generate.compile (it refuses it)
VARIANTS = {
    "recipe": {},
    "no-checkpointing": {"train.gradient_checkpointing": False},
    "budget": {"train.gradient_checkpointing": "budget"},
    "compile": {"train.compile": True, "generate.compile": True},
    "compile+budget": {"train.compile": True, "generate.compile": True, "train.gradient_checkpointing": "budget"},
}
ZERO_SHOT = ("dmt", "flowmotion")
CONSUMER_CARD_GIB = 24  # Wan 2.2 TI2V-5B's motionlora training should fit a 24 GB card


def clip_text_encoder(tokenizer, width: int, layers: int, heads: int, **options):
    from transformers import CLIPTextModel

    from sma.embedded.architecture import clip_text_config

    return CLIPTextModel(clip_text_config(tokenizer, width, layers, heads, vocab_size=49408, **options))


def stable_diffusion_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
    )


def build_real(backbone: str, folder: Path) -> dict[str, Path]:
    """Random real-size models of a backbone in diffusers layout, fp16 safetensors: {"model": ..., ...}."""
    from diffusers import ControlNetModel, MotionAdapter, UNet2DConditionModel, UNet3DConditionModel
    from real_scale import ANIMATEDIFF_V153_ADAPTER, SD15_CONTROLNET_DEPTH, SD15_UNET, ZEROSCOPE_UNET

    from sma.embedded.architecture import save_model_folder, write_clip_tokenizer
    from tiny_show1 import build_show1_base, build_show1_interpolation

    if backbone == "wan":
        return {"model": build_real_wan(folder / "model")}
    if backbone == "wan-ti2v":
        return {"model": build_real_wan_ti2v(folder / "model")}
    if backbone in ("wan-a14b", "wan-i2v-a14b"):
        return {"model": build_real_wan_a14b(folder / "model", image=backbone == "wan-i2v-a14b")}
    if backbone.startswith("show1"):  # the real base UNet (1.73 B); a 2-layer T5 of T5-XXL's width stands in for T5-XXL
        config = json.loads((ROOT / "tests" / "data" / "show1_base_unet_state.json").read_text())["config"]
        unet_config = {key: value for key, value in config.items() if not key.startswith("_")}
        paths = {
            "model": build_show1_base(folder / "model", text_width=4096, unet_config=unet_config, dtype=torch.float16)
        }
        if backbone == "show1-cascade":  # the interpolation UNet: the base's with 7 input channels
            options = {"text_width": 4096, "unet_config": unet_config, "dtype": torch.float16}
            paths["interpolation"] = build_show1_interpolation(folder / "interpolation", **options)
        return paths
    torch.manual_seed(0)
    tokenizer = write_clip_tokenizer(folder / "model" / "tokenizer", max_length=77)
    if backbone == "zeroscope":  # OpenCLIP ViT-H/14's text tower
        text_encoder = clip_text_encoder(tokenizer, 1024, 23, 16, intermediate_size=4096, hidden_act="gelu")
        unet, pipeline = UNet3DConditionModel(**ZEROSCOPE_UNET), "TextToVideoSDPipeline"
    else:  # Stable Diffusion 1.5 (also under AnimateDiff): CLIP ViT-L/14's text tower
        text_encoder = clip_text_encoder(tokenizer, 768, 12, 12, intermediate_size=3072, hidden_act="quick_gelu")
        unet, pipeline = UNet2DConditionModel(**SD15_UNET), "StableDiffusionPipeline"
    networks = [network.half() for network in (unet, stable_diffusion_vae(), text_encoder)]
    paths = {"model": save_model_folder(folder / "model", pipeline, *networks)}
    if backbone == "sd15":
        ControlNetModel(**SD15_CONTROLNET_DEPTH).half().save_pretrained(folder / "controlnet")
        paths["controlnet"] = folder / "controlnet"
    if backbone == "animatediff":
        MotionAdapter.from_config(ANIMATEDIFF_V153_ADAPTER).half().save_pretrained(folder / "motion_adapter")
        paths["motion_adapter"] = folder / "motion_adapter"
    return paths


def build_real_wan(folder: Path) -> Path:
    """Wan 2.1 T2V 1.3B's transformer (1.42 B parameters) and VAE (diffusers' defaults are Wan 2.1's) in bf16, the
    dtype Wan is released in; a 2-layer UMT5 of umt5-xxl's width (4096, 64 heads, feed-forward 10240) stands in for
    the 5.7 B encoder, with a small written vocabulary."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from real_scale import WAN_T2V_1_3B
    from transformers import UMT5EncoderModel

    from tiny_wan import save_wan_folder, umt5_config, write_umt5_tokenizer

    tokenizer = write_umt5_tokenizer(folder / "tokenizer", words=("a", "red", "circle", "blue", "square"))
    torch.manual_seed(0)
    networks = (
        WanTransformer3DModel.from_config(WAN_T2V_1_3B),
        AutoencoderKLWan(),
        UMT5EncoderModel(umt5_config(tokenizer, width=4096, layers=2, heads=64, feed_forward=10240)),
    )
    return save_wan_folder(folder, *(network.to(torch.bfloat16) for network in networks))


def build_real_wan_ti2v(folder: Path) -> Path:
    """Wan 2.2 TI2V-5B's transformer (5.0 B parameters) and Wan 2.2 VAE in bf16, with build_real_wan's stand-in UMT5;
    model_index.json as the Hub's (WanPipeline, `expand_timesteps`)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from real_scale import WAN22_VAE, WAN_TI2V_5B
    from tiny_wan_i2v import update_model_index
    from transformers import UMT5EncoderModel

    from tiny_wan import save_wan_folder, umt5_config, write_umt5_tokenizer

    tokenizer = write_umt5_tokenizer(folder / "tokenizer", words=("a", "red", "circle", "blue", "square"))
    torch.manual_seed(0)
    networks = (
        WanTransformer3DModel.from_config(WAN_TI2V_5B),
        AutoencoderKLWan.from_config(WAN22_VAE),
        UMT5EncoderModel(umt5_config(tokenizer, width=4096, layers=2, heads=64, feed_forward=10240)),
    )
    save_wan_folder(folder, *(network.to(torch.bfloat16) for network in networks))
    return update_model_index(folder, expand_timesteps=True, boundary_ratio=None, transformer_2=[None, None])


def build_real_wan_a14b(folder: Path, image: bool) -> Path:
    """Wan 2.2 A14B's layout (T2V, or I2V: 36 input channels, no CLIP) with a 14 B expert in bf16 (built in bf16: 28
    GB) whose folder also serves as `transformer_2` (a link), Wan 2.1's VAE and build_real_wan's stand-in UMT5."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from real_scale import WAN22_I2V_A14B, WAN22_T2V_A14B
    from tiny_wan_i2v import update_model_index
    from transformers import UMT5EncoderModel

    from tiny_wan import save_wan_folder, umt5_config, write_umt5_tokenizer

    tokenizer = write_umt5_tokenizer(folder / "tokenizer", words=("a", "red", "circle", "blue", "square"))
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        transformer = WanTransformer3DModel.from_config(WAN22_I2V_A14B if image else WAN22_T2V_A14B)
    finally:
        torch.set_default_dtype(torch.float32)
    text = UMT5EncoderModel(umt5_config(tokenizer, width=4096, layers=2, heads=64, feed_forward=10240))
    save_wan_folder(folder, transformer, AutoencoderKLWan().to(torch.bfloat16), text.to(torch.bfloat16))
    (folder / "transformer_2").symlink_to("transformer", target_is_directory=True)
    entries = {"transformer_2": ["diffusers", "WanTransformer3DModel"], "boundary_ratio": 0.9 if image else 0.875}
    if image:
        entries |= {"_class_name": "WanImageToVideoPipeline", "image_encoder": [None, None]}
        entries |= {"image_processor": [None, None], "expand_timesteps": False}
    return update_model_index(folder, **entries)


def build_tiny(backbone: str, folder: Path) -> dict[str, Path]:
    from tiny_models import TinySizes, build_controlnet, build_motion_adapter, build_text_to_image, build_text_to_video
    from tiny_show1 import build_show1_base, build_show1_interpolation
    from tiny_wan import build_wan

    if backbone == "show1":
        return {"model": build_show1_base(folder / "model")}
    if backbone == "show1-cascade":
        return {
            "model": build_show1_base(folder / "model"),
            "interpolation": build_show1_interpolation(folder / "interp"),
        }
    if backbone == "wan":
        return {"model": build_wan(folder / "model")}
    if backbone == "wan-ti2v":
        from tiny_wan_i2v import build_wan_ti2v

        return {"model": build_wan_ti2v(folder / "model")}
    if backbone == "wan-a14b":
        from tiny_wan import build_wan_a14b

        return {"model": build_wan_a14b(folder / "model")}
    if backbone == "wan-i2v-a14b":
        from tiny_wan_i2v import build_wan_i2v_a14b

        return {"model": build_wan_i2v_a14b(folder / "model")}
    if backbone == "animatediff":
        return {
            "model": build_text_to_image(folder / "model"),
            "motion_adapter": build_motion_adapter(folder / "adapter"),
        }
    if backbone == "zeroscope":  # three resolutions, so that up_blocks.1 has the upsampler DMT reads
        return {"model": build_text_to_video(folder / "model", TinySizes(unet_channels=(16, 16, 32)))}
    return {"model": build_text_to_image(folder / "model"), "controlnet": build_controlnet(folder / "controlnet")}


def variant_overrides(name: str, variant: str) -> dict:
    """The recipe keys a variant sets for a method: those it can take."""
    keys = VARIANTS[variant]
    if name == "dmt":  # its guidance's checkpointing is its own key
        checkpointing = keys.get("train.gradient_checkpointing")
        keys = {} if checkpointing is None else {"dmt.gradient_checkpointing": checkpointing}
    elif name.startswith(ZERO_SHOT):
        keys = {key: value for key, value in keys.items() if not key.startswith("train.")}
    return keys


def run_method(
    name: str, models: dict[str, Path], reference: Path, out: Path, size: str, steps: int, variant: str = "recipe"
) -> dict:
    from sma.recipes import load_config
    from sma.runs import transfer

    recipe, _, frames, (height, width) = RECIPES[name]
    overrides = {"model": str(models["model"]), "prompt": "a red circle", "targets": ["a blue square"]}
    overrides |= {"video.frames": frames, "video.stride": 1}
    if name == "dmt":
        overrides |= DMT_SHORT_RUN
    elif name.startswith("flowmotion"):
        overrides |= FLOWMOTION_SHORT_RUN
    else:
        overrides |= SHORT_RUN | {"train.steps": steps, "train.checkpoint_every": steps}
    if "motion_adapter" in models:
        overrides["motion_adapter"] = str(models["motion_adapter"])
    if "interpolation" in models:
        overrides |= CASCADE_SHORT_RUN | {"show1.interpolation": str(models["interpolation"])}
    if name == "controlvideo":
        overrides |= {"controlvideo.controlnet": str(models["controlnet"]), "controlvideo.video": str(reference)}
    if "picture" in models:
        overrides["image"] = str(models["picture"])
    if size == "tiny":
        side = 16 if name.startswith("vmc-show1") else 32
        overrides |= {"video.height": side, "video.width": side}
        overrides |= {} if name.startswith("flowmotion") else {"train.mixed_precision": "no"}
    else:
        overrides |= {"video.height": height, "video.width": width}
    config = load_config(ROOT / "configs" / f"{recipe}.yaml", overrides | variant_overrides(name, variant))
    start = time.perf_counter()
    run_dir = transfer(config, reference, out / f"{name}-{variant}", overwrite=True)
    wall = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    label = name if variant == "recipe" else f"{name} [{variant}]"
    result = {"method": label, "frames": config.video.frames, "wall_s": wall, "phases": metrics["phases"]}
    return result | ({"checkpointing": metrics["checkpointing"]} if "checkpointing" in metrics else {})


PHASES = ("train", "invert", "sample", "untuned", "generate", "decode", "cascade")
HEADER = f"{'method':<28}{'frames':>7}{'train s/step':>14}" + "".join(f"{p + ' GiB':>14}" for p in PHASES)
HEADER += f"{'generate s':>12}{'wall s':>9}"


def row(result: dict) -> str:
    if "error" in result:
        return f"{result['method']:<28}FAILED: {result['error']}"
    record = result["phases"]
    train = record.get("train", {}).get("seconds_per_step")
    cells = "".join(f"{record.get(p, {}).get('peak_memory_gib', float('nan')):>14.2f}" for p in PHASES)
    return (
        f"{result['method']:<28}{result['frames']:>7}{(f'{train:.3f}' if train else '-'):>14}{cells}"
        f"{record.get('generate', {}).get('seconds', float('nan')):>12.1f}{result['wall_s']:>9.1f}"
    )


@contextlib.contextmanager
def profiled(enabled: bool, method: str, rows: int = 15):
    """torch.profiler around one method's run, then its table: the phases (rows "phase: train", "phase: sample",
    ...) and the operators that took the most time on the device (the CPU without one)."""
    if not enabled:
        yield
        return
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities) as profiler:
        yield
    averages = profiler.key_averages()
    phases = [event for event in averages if event.key.startswith("phase: ")]
    print(f"\n{method}: time per phase (profiled, with the profiler's overhead)")
    for event in phases:
        print(f"  {event.key.removeprefix('phase: '):<10} {event.cpu_time_total / 1e6:8.2f} s wall")
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(averages.table(sort_by=sort, row_limit=rows), flush=True)


def plan_line(result: dict) -> str:
    """What a memory budget chose, beside the row that measured its peak."""
    plan = result["checkpointing"]
    return (
        f"{result['method']}: {len(plan['checkpointed'])} of {plan['layers']} layers recomputed for a budget of "
        f"{plan['budget_gib']:.1f} GiB; estimated peak {plan['estimate_gib']:.2f} GiB "
        f"({plan['unplanned_gib']:.2f} with none recomputed)"
    )


def guidance_cost(result: dict) -> str:
    """Guided sampling against plain sampling of the same size in the same run (FlowMotion's targets: within
    1.7x the seconds, peak memory within the official 19 GB)."""
    guided, plain = result["phases"]["sample"], result["phases"]["untuned"]
    memory = (
        f"{guided['peak_memory_gib']:.2f} / {plain['peak_memory_gib']:.2f} GiB" if plain.get("peak_memory_gib") else ""
    )
    return f"{result['method']}: guided / plain sampling {guided['seconds'] / plain['seconds']:.2f}x seconds{memory}"


def run_on_backbone(
    method: str, models: dict, references: dict, build, work: Path, size: str, steps: int, variant: str
) -> dict:
    """Builds the method's backbone and reference clip on first use, then runs the method."""
    from PIL import Image

    from sma.video import MovingObject, synthetic_video, write_video

    _, backbone, frames, (height, width) = RECIPES[method]
    if backbone not in models:
        began = time.perf_counter()
        models[backbone] = build(backbone, work / backbone)
        print(f"{backbone} written in {time.perf_counter() - began:.0f} s", flush=True)
        side = (height, width) if size == "real" else (32, 32)
        shape = {"num_frames": max(24, frames), "height": side[0], "width": side[1]}
        clip = synthetic_video(MovingObject("circle", "red", "zigzag"), **shape)
        references[backbone] = write_video(work / f"reference-{backbone}.mp4", clip.frames, overwrite=True)
        if backbone in IMAGE_BACKBONES:  # image to video: the picture every target starts from
            models[backbone]["picture"] = work / "picture.png"
            Image.fromarray(clip.frames[-1]).save(models[backbone]["picture"])
    return run_method(method, models[backbone], references[backbone], work / "runs", size, steps, variant)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("real", "tiny"), default="real")
    parser.add_argument(
        "--methods", nargs="+", choices=list(RECIPES), default=[name for name in RECIPES if name not in OPTIONAL]
    )
    parser.add_argument("--train-steps", type=int, default=8, help="training steps of each trained method")
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="results file, rewritten after each method")
    parser.add_argument("--profile", action="store_true", help="print where each method spends its time")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=["recipe"],
        help="a row per method and variant: the recipe, and with the speed options",
    )
    arguments = parser.parse_args()
    if arguments.size == "real" and not torch.cuda.is_available():
        print("gpu_smoke: --size real needs a CUDA GPU (use --size tiny to check the script on the CPU)")
        return 2
    work = arguments.out or Path(tempfile.mkdtemp(prefix="sma-gpu-smoke-"))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    import diffusers
    import transformers

    print(device, *(f"{module.__name__} {module.__version__}" for module in (torch, diffusers, transformers)), sep="; ")
    start = time.perf_counter()
    build = build_real if arguments.size == "real" else build_tiny
    results, models, references = [], {}, {}
    for method, variant in [(method, variant) for method in arguments.methods for variant in arguments.variants]:
        try:
            with profiled(arguments.profile, method):
                result = run_on_backbone(
                    method, models, references, build, work, arguments.size, arguments.train_steps, variant
                )
        except Exception as error:
            traceback.print_exc()
            result = {"method": method, "error": f"{type(error).__name__}: {error}".splitlines()[0]}
        results.append(result)
        print(HEADER if len(results) == 1 else "", row(result), sep="\n", flush=True)
        if "checkpointing" in result:
            print(plan_line(result), flush=True)
        if "untuned" in result.get("phases", {}):
            print(guidance_cost(result), flush=True)
        if method == "motionlora-wan2.2-ti2v" and "phases" in result:
            peak = result["phases"].get("train", {}).get("peak_memory_gib", float("nan"))
            print(f"{method}: training peak {peak:.2f} GiB (target: {CONSUMER_CARD_GIB} GB)", flush=True)
        if method in A14B and "phases" in result:
            peak = max(phase.get("peak_memory_gib", float("nan")) for phase in result["phases"].values())
            print(f"{method}: peak {peak:.2f} GiB, one expert on the card (target: {ONE_CARD_GIB} GB)", flush=True)
        if arguments.json:
            arguments.json.write_text(json.dumps({"device": device, "size": arguments.size, "results": results}))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print(f"\n{device}, {arguments.size} size, {time.perf_counter() - start:.0f} s in all")
    print(HEADER, *map(row, results), sep="\n")
    return 1 if any("error" in result for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
