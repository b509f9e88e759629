"""Train the embedded text-to-video model on synthetic videos.

    python -m sma.embedded.train --out DIR [--world simple|hard] [--seed 0] [--max-minutes 60]

Same classes and layout as ZeroScope (AutoencoderKL, CLIPTextModel + CLIPTokenizer,
UNet3DConditionModel, DDIMScheduler), built by `sma.embedded.architecture` and trained here in
two stages: the VAE on single frames, then the UNet and the text encoder together on VAE
latents of the world's clips (simple: 8 frames, hard: 16, both 64x64; epsilon prediction,
10% empty prompts for classifier-free guidance, EMA of the weights). Writes the model, a
sample grid and a model card.

`--init DIR` continues a model this script wrote (its VAE, latent scale and tokenizer kept, the
denoiser trained further), so that a long training can be spread over several sittings.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from transformers import CLIPTokenizer

from sma.backbones.text_to_video import TextToVideoModel
from sma.embedded.architecture import TinySizes, build_text_to_video
from sma.embedded.world import BACKGROUNDS, COLOURS, SHAPES, WORLDS, appearance_prompt, sample_untuned, vocabulary
from sma.errors import SmaError
from sma.recipes import NATIVE_SIZE_KEY

SIZES = TinySizes(
    unet_channels=(32, 64, 64),
    vae_channels=(32, 64, 64),
    text_width=64,
    text_layers=2,
    max_prompt_tokens=24,
    attention_head_dim=8,
    norm_groups=16,
)
PROMPT_TOKENS = {"simple": 24, "hard": 64}  # the hard world's longest prompts run to about 55 tokens
SAMPLE_PROMPTS = {
    "simple": (
        "a red circle moving from left to right on a plain white background",
        "a blue square moving from top to bottom on a plain black background",
        "a yellow star circling clockwise on a plain gray background",
        "a green triangle bouncing from right to left on a plain white background",
    ),
    "hard": (
        "a red circle moving from left to right on a striped white and black background, "
        "the camera panning from left to right",
        "a blue square zigzagging from right to left and a yellow star circling clockwise on a textured gray and "
        "white background",
        "a green triangle standing still, waving its arm on a checkered black and gray background, "
        "the camera zooming in",
        "a purple circle bouncing from left to right, stopping halfway, pulsing on a spotted white and gray background",
    ),
}
DATA = {
    "simple": (
        "Synthetic 8-frame 64x64 clips from `sma.embedded.world`: one shape (circle, square, triangle,",
        "star) in one of six colours on a plain white, black or gray background, moving linearly",
        "(horizontal, vertical, diagonal), circling, zigzagging or bouncing. Prompts describe the",
        "shape, colour, background and, 70% of the time, the motion; 10% are empty during training.",
    ),
    "hard": (
        "Synthetic 16-frame 64x64 clips of the hard world (`sma.embedded.world.HardWorld`, whose",
        "fields hold every share and range): one or two shapes (circle, square, triangle, star; six",
        "colours), each moving in its own band (linearly, circling, zigzagging, bouncing; rigid, or",
        "pulsing, squashing and stretching, or waving an arm, then also standing still), at constant",
        "speed, easing in and out or stopping halfway; on textured, striped, checkered or spotted",
        "backgrounds in two of white, black and gray (15% plain), under a camera that pans, zooms,",
        "or both, in 65% of clips. Prompts describe the shapes, colours, background and, 70% of the",
        "time, the motion and the camera; 10% are empty during training.",
    ),
}


def model_sizes(world: str, unet_channels: str = "32,64,64") -> TinySizes:
    """The shipped model's widths with the world's prompt length and the given UNet widths."""
    try:
        channels = tuple(int(width) for width in unet_channels.split(","))
    except ValueError:
        raise SmaError(f"UNet widths are comma-separated integers, not {unet_channels!r}") from None
    if not channels or any(width <= 0 or width % SIZES.norm_groups for width in channels):
        raise SmaError(f"UNet widths must be positive multiples of {SIZES.norm_groups}, not {unet_channels!r}")
    return replace(SIZES, unet_channels=channels, max_prompt_tokens=PROMPT_TOKENS[world])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_dataset(
    count: int, rng: np.random.Generator, world: str = "simple"
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """`count` clips of a world: uint8 frames (n, f, h, w, 3), the masks of their objects (n, f, h, w), prompts.

    Kept as uint8 (a quarter of float32's memory: 3000 hard clips take 0.6 GB) and made floats a batch at a time.
    """
    clips, masks, prompts = [], [], []
    for _ in range(count):
        clip, prompt = WORLDS[world].random_clip(rng)
        clips.append(torch.from_numpy(clip.frames))
        masks.append(torch.from_numpy(clip.masks))
        prompts.append(prompt)
    return torch.stack(clips), torch.stack(masks), prompts


def as_pixels(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (..., h, w, 3) -> float (..., 3, h, w) in [-1, 1]."""
    return frames.movedim(-1, -3).float() / 127.5 - 1.0


def train_vae(
    model: TextToVideoModel, videos: torch.Tensor, masks: torch.Tensor, steps: int, rng: np.random.Generator
) -> None:
    """Reconstruction of single frames from the posterior mean (the latents the denoiser will
    see), with a light KL term that keeps them bounded; sampling the posterior here instead
    blurred every object after hundreds of steps.

    The objects cover a few percent of a frame, so a plain MSE is content with blurred,
    brownish blobs; the pixels they cover (`masks`, from the renderer) weigh ten times more.
    """
    vae = model.vae
    vae.requires_grad_(True)
    vae.train()
    frames, covered = videos.flatten(0, 1), masks.flatten(0, 1)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_decay(step / steps))
    for step in range(steps):
        chosen = torch.from_numpy(rng.choice(len(frames), 16, replace=False))
        batch = as_pixels(frames[chosen]).to(model.device)
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.mode()).sample
        weight = 1 + 9 * covered[chosen, None].float().to(model.device)
        loss = ((reconstruction - batch) ** 2 * weight).mean() / weight.mean() + 1e-6 * posterior.kl().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        lr_schedule.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"vae step {step}: loss {loss.item():.5f}")
    vae.requires_grad_(False)
    vae.eval()


def cosine_decay(progress: float, warmup: float = 0.03, floor: float = 0.1) -> float:
    """Learning-rate factor at `progress` in [0, 1] of a run: linear warm-up, then cosine to `floor`."""
    if progress < warmup:
        return (progress + 1e-3) / warmup
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / (1 - warmup))))


@torch.no_grad()
def encode_dataset(model: TextToVideoModel, videos: torch.Tensor, keep_scale: bool = False) -> torch.Tensor:
    """VAE means of every clip (uint8 frames (n, f, h, w, 3)), scaled to unit variance; the scale goes into the
    VAE config. `keep_scale`: a continued model keeps the scale its denoiser learnt with."""
    scale = model.vae.config.scaling_factor
    model.vae.register_to_config(scaling_factor=1.0)
    latents = torch.cat([model.encode_video(as_pixels(chunk).transpose(1, 2)) for chunk in videos.split(16)])
    if not keep_scale:
        scale = 1.0 / latents.std().item()
    model.vae.register_to_config(scaling_factor=scale)
    return latents * scale


def denoiser_parameters(model: TextToVideoModel) -> list[torch.nn.Parameter]:
    return [*model.unet.parameters(), *model.text_encoder.parameters()]


def latent_foreground(masks: torch.Tensor, factor: int) -> torch.Tensor:
    """Where the objects are (masks (n, f, h, w)), at latent resolution: (n, 1, f, h/factor, w/factor) of 0 and 1."""
    return F.max_pool2d(masks.flatten(0, 1)[:, None].float(), factor).unflatten(0, masks.shape[:2]).transpose(1, 2)


def train_denoiser(
    model: TextToVideoModel,
    latents: torch.Tensor,
    masks: torch.Tensor,
    prompts: list[str],
    steps: int,
    batch_size: int,
    deadline: float,
    rng: np.random.Generator,
    checkpoint,
) -> int:
    """UNet and text encoder together on the diffusion MSE; returns the steps taken.

    The latents that hold the object weigh five times more (`masks`): the optimum of the
    loss stays the same, but the small model spends its capacity on the object.
    """
    parameters = denoiser_parameters(model)
    for module in (model.unet, model.text_encoder):
        module.requires_grad_(True)
        module.train()
    peak_lr = 5e-4
    optimizer = torch.optim.AdamW(parameters, lr=peak_lr, weight_decay=0.01)
    ema = EMAModel(parameters, decay=0.995, foreach=True)
    scheduler = model.scheduler
    tokens, empty = model.tokenize(prompts), model.tokenize([""])  # tokenized once: per step it outlasts a GPU step
    started = time.time()

    def progress() -> float:
        """Share of the run done: of its steps, or of its time budget when that binds first."""
        return max(step / steps, (time.time() - started) / max(1e-9, deadline - started))

    step = 0
    while step < steps and time.time() < deadline:
        chosen = torch.from_numpy(rng.choice(len(latents), batch_size, replace=False)).to(latents.device)
        unprompted = torch.from_numpy(rng.random(batch_size) <= 0.1).to(latents.device)
        clean = latents[chosen]
        text = model.text_encoder(torch.where(unprompted[:, None], empty, tokens[chosen])).last_hidden_state
        noise = torch.randn_like(clean)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), device=clean.device)
        prediction = model.unet(
            scheduler.add_noise(clean, noise, timesteps), timesteps, encoder_hidden_states=text
        ).sample
        weight = 1 + 4 * masks[chosen]
        loss = ((prediction - noise) ** 2 * weight).mean() / weight.mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        for group in optimizer.param_groups:
            group["lr"] = peak_lr * cosine_decay(progress())
        optimizer.step()
        optimizer.zero_grad()
        ema.step(parameters)
        step += 1
        if step % 50 == 0:
            log(f"denoiser step {step}: loss {loss.item():.4f}, lr {optimizer.param_groups[0]['lr']:.2e}")
        if step % 500 == 0:
            with_ema(model, ema, checkpoint)
    for module in (model.unet, model.text_encoder):
        module.requires_grad_(False)
        module.eval()
    ema.copy_to(parameters)
    return step


def with_ema(model: TextToVideoModel, ema: EMAModel, action) -> None:
    """Run `action` with the EMA weights in place, then put the training weights back."""
    parameters = denoiser_parameters(model)
    ema.store(parameters)
    ema.copy_to(parameters)
    action()
    ema.restore(parameters)


def continue_from(init: Path, folder: Path) -> dict:
    """Copy the model in `init` to `folder` to be trained further; returns its training record."""
    if folder.resolve() == init.resolve():
        raise SmaError("`--init` and `--out` must be different folders: the first run's model is kept")
    record_file = init / "training.json"
    if not record_file.is_file():
        raise SmaError(f"{init} holds no model written by `sma.embedded.train` (no training.json)")
    shutil.copytree(init, folder, ignore=shutil.ignore_patterns("README.md", "samples.gif"), dirs_exist_ok=True)
    return json.loads(record_file.read_text())


def save(model: TextToVideoModel, folder: Path, world: str) -> None:
    """The networks, and in model_index.json the size the world's clips have: runs default to it."""
    model.unet.save_pretrained(folder / "unet")
    model.vae.save_pretrained(folder / "vae")
    model.text_encoder.save_pretrained(folder / "text_encoder")
    index = json.loads((folder / "model_index.json").read_text())
    frames, size = WORLDS[world].frames, WORLDS[world].size
    index[NATIVE_SIZE_KEY] = {"frames": frames, "height": size, "width": size}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


@torch.no_grad()
def sample_grid(folder: Path, seed: int, world: str, steps: int, device: str = "cpu") -> None:
    """Sample the model card's prompts from the saved model, as a user would; write a grid."""
    from sma.video import write_grid

    model = TextToVideoModel.from_pretrained(str(folder), device)
    frames, size = WORLDS[world].frames, WORLDS[world].size
    prompts = SAMPLE_PROMPTS[world]
    videos = [
        sample_untuned(model, prompt, seed + index, steps, frames=frames, size=size)
        for index, prompt in enumerate(prompts)
    ]
    captions = [prompt.split(" on a ")[0] for prompt in prompts]
    write_grid(folder / "samples.gif", videos, captions, fps=4, overwrite=True)


@torch.no_grad()
def appearance_check(
    folder: Path, seed: int, count: int, world: str, steps: int, device: str = "cpu"
) -> dict[str, float]:
    """Appearance accuracy of one sample for each of the first `count` colour x shape pairs
    (backgrounds in turn), overall and by shape."""
    from sma.metrics.appearance import appearance_accuracy
    from sma.video.synthetic import rgb

    model = TextToVideoModel.from_pretrained(str(folder), device)
    scores: dict[str, list[float]] = {shape: [] for shape in SHAPES}
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES][:count]
    for index, (colour, shape) in enumerate(pairs):
        prompt = appearance_prompt(colour, shape, BACKGROUNDS[index % len(BACKGROUNDS)])
        video = sample_untuned(model, prompt, seed + index, steps, frames=WORLDS[world].frames, size=WORLDS[world].size)
        scores[shape].append(appearance_accuracy(video, rgb(colour), shape))
    every = [score for values in scores.values() for score in values]
    by_shape = {shape: round(float(np.mean(values)), 3) for shape, values in scores.items() if values}
    return {"samples": len(every), "all": round(float(np.mean(every)), 3)} | by_shape


def device_name(device: str) -> str:
    """The device as the card records it: a GPU by its model, the CPU as `cpu`."""
    device = torch.device(device)
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


def reproduce_commands(record: dict, out: str = "DIR") -> list[str]:
    """The commands that made a model: the first run's, then one per continuation."""
    earlier = reproduce_commands(record["continues"], f"{out}0") if "continues" in record else []
    init = f" --init {out}0" if earlier else ""
    return [
        *earlier,
        f"python -m sma.embedded.train --out {out} --world {record['world']} --seed {record['seed']} "
        f"--max-minutes {record['max_minutes']} --steps {record['steps']} --videos {record['videos']} "
        f"--batch {record['batch']}{init}",
    ]


def tokenizer_note(tokenizer: CLIPTokenizer, words: list[str]) -> str:
    """What the card says of the tokenizer: the world's words it reads in pieces named (the shipped models were
    trained on such pieces; `write_clip_tokenizer` now builds every word whole, but `--init` keeps a tokenizer)."""
    pieces = [word for word in words if len(tokenizer.tokenize(word)) > 1]
    note = "byte-level BPE whose merges read each word of the world's vocabulary as one token"
    return f"{note} but {', '.join(pieces)}, which the model learnt in pieces" if pieces else note


def write_card(folder: Path, record: dict, appearance: dict[str, float]) -> None:
    tokenizer = tokenizer_note(CLIPTokenizer.from_pretrained(folder / "tokenizer"), vocabulary(world=record["world"]))
    lines = [
        "# sma embedded text-to-video model",
        "",
        "A small text-to-video latent diffusion model that `sma` trains itself on synthetic videos and",
        "ships, so that `sma demo` runs anywhere without downloading weights. Same classes and",
        "diffusers layout as ZeroScope: AutoencoderKL (factor 4), CLIPTextModel + CLIPTokenizer",
        f"({tokenizer}), UNet3DConditionModel,",
        "DDIMScheduler (scaled-linear betas, epsilon prediction).",
        "",
        "## Data",
        *DATA[record["world"]],
        "",
        "## Recipe",
        "```json",
        json.dumps(record, indent=2),
        "```",
        "",
        "## Reproduce",
        "```bash",
        *reproduce_commands(record),
        "```",
        "(the denoiser stage stops at its step count or its time budget, whichever comes first,",
        "so a run on another machine may take a different number of steps).",
        "",
        "## Samples",
        f"`samples.gif`: DDIM {record['sample_steps']} steps, guidance 5, from the prompts "
        + "; ".join(f"'{p}'" for p in SAMPLE_PROMPTS[record["world"]])
        + ".",
        "",
        "## Appearance check",
        f"One sample for each of {appearance['samples']} colour x shape prompts (same sampler, backgrounds in",
        "turn), scored by `sma.metrics.appearance.appearance_accuracy` (share of frames whose largest",
        "blob of the prompted colour has the prompted shape): overall and by shape,",
        f"`{json.dumps(appearance)}`.",
    ]
    (folder / "README.md").write_text("\n".join(lines) + "\n")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--world", choices=sorted(WORLDS), default="simple", help="the synthetic world to learn")
    parser.add_argument(
        "--unet-channels", default="32,64,64", help="UNet block widths (the model's size), comma-separated"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos", type=int, default=3000)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=4000, help="denoiser steps")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-minutes", type=float, default=70, help="time budget of the denoiser stage")
    parser.add_argument("--threads", type=int, default=2)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, help="where to train (default: a GPU if there is one)")
    parser.add_argument("--init", type=Path, help="continue training the denoiser of a model this script wrote")
    parser.add_argument("--check-samples", type=int, default=24, help="colour x shape prompts the card scores")
    parser.add_argument("--sample-steps", type=int, default=30, help="DDIM steps of the card's samples")
    return parser


def start_model(arguments: argparse.Namespace) -> tuple[TinySizes, dict | None]:
    """A new model in `--out` at the asked widths, or the `--init` model copied there; returns the widths and
    the continued model's training record (None for a new one)."""
    sizes = model_sizes(arguments.world, arguments.unet_channels)
    if not arguments.init:
        build_text_to_video(arguments.out, sizes, arguments.seed, words=vocabulary(world=arguments.world))
        return sizes, None
    earlier = continue_from(arguments.init, arguments.out)
    if earlier["world"] != arguments.world:
        raise SmaError(f"{arguments.init} learnt the {earlier['world']} world: pass `--world {earlier['world']}`")
    return sizes, earlier


def train_model(arguments: argparse.Namespace, continued: bool, rng: np.random.Generator) -> int:
    """The two stages on a fresh dataset of the world (a `continued` model keeps its VAE and latent scale), the
    model saved after each; returns the denoiser steps taken."""
    model = TextToVideoModel.from_pretrained(str(arguments.out), arguments.device)
    log(f"making {arguments.videos} clips of the {arguments.world} world")
    videos, masks, prompts = make_dataset(arguments.videos, rng, arguments.world)
    if not continued:
        train_vae(model, videos, masks, arguments.vae_steps, rng)
    latents = encode_dataset(model, videos, keep_scale=continued)
    log(f"latents {tuple(latents.shape)}, scaling factor {model.vae.config.scaling_factor:.4f}")
    save(model, arguments.out, arguments.world)
    deadline = time.time() + 60 * arguments.max_minutes
    steps = train_denoiser(
        model,
        latents,
        latent_foreground(masks, videos.shape[2] // latents.shape[-2]).to(latents.device),
        prompts,
        arguments.steps,
        arguments.batch,
        deadline,
        rng,
        lambda: save(model, arguments.out, arguments.world),
    )
    save(model, arguments.out, arguments.world)
    return steps


def training_record(
    arguments: argparse.Namespace, sizes: TinySizes, earlier: dict | None, steps: int, minutes: float
) -> dict:
    """What the model card and training.json say of a run (and of the runs it continues)."""
    return {
        "world": arguments.world,
        "seed": arguments.seed,
        "videos": arguments.videos,
        "vae_steps": 0 if earlier else arguments.vae_steps,
        "steps": arguments.steps,
        "denoiser_steps": steps,
        "batch": arguments.batch,
        "max_minutes": arguments.max_minutes,
        "minutes": round(minutes, 1),
        "threads": arguments.threads,
        "device": device_name(arguments.device),
        "sample_steps": arguments.sample_steps,
        "sizes": earlier["sizes"] if earlier else sizes.__dict__,
        "example_prompt": appearance_prompt("red", "circle", "white"),
    } | ({"continues": earlier} if earlier else {})


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser()
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(arguments.seed)
    rng = np.random.default_rng(arguments.seed)
    started = time.time()
    try:
        sizes, earlier = start_model(arguments)
    except SmaError as error:
        parser.error(str(error))
    steps = train_model(arguments, earlier is not None, rng)
    minutes = (time.time() - started) / 60
    log(f"trained {steps} denoiser steps in {minutes:.1f} minutes")
    record = training_record(arguments, sizes, earlier, steps, minutes)
    (arguments.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    sample_grid(arguments.out, arguments.seed, arguments.world, arguments.sample_steps, arguments.device)
    appearance = appearance_check(
        arguments.out,
        arguments.seed,
        arguments.check_samples,
        arguments.world,
        arguments.sample_steps,
        arguments.device,
    )
    log(f"appearance accuracy of the samples: {appearance}")
    write_card(arguments.out, record, appearance)
    log("done")


if __name__ == "__main__":
    main()
