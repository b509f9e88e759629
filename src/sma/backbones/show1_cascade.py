"""Show-1's cascade after the keyframes: interpolation, pixel super-resolution, latent super-resolution.

The base stage makes 8 keyframes at 40x64; `interp` fills 3 frames between each pair (29
frames), `sr1` enlarges them 4x to 160x256 in pixel space (DeepFloyd IF-II-L for the first
frame, then Show-1's video model in windows of 8 frames, each conditioned on the
super-resolved first frame of its window), and `sr2` refines them at 320x576 with a latent
video-to-video pass (ZeroScope-like, strength 0.8). Settings, steps and guidance follow the
authors' `run_inference.py`; docs/methods.md lists them with file and line.

Memory: stages run one after another, each stage's networks on the accelerator only while it
runs, then freed; the T5 states are computed before the cascade starts (the encoder is freed)
and the base UNet waits on the CPU. The largest stage alone then sets the peak.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from sma.backbones.hub import ModelNotFoundError, load_component
from sma.backbones.show1_unet import Show1UNet3DConditionModel
from sma.backbones.text_to_video import TextToVideoModel
from sma.errors import SmaError
from sma.progress import bar
from sma.sampling import gaussian_like, guided

if TYPE_CHECKING:
    from sma.backbones.show1 import Show1Model

# The authors' run_inference.py: guidance, noise levels of the conditioning frames, strength
INTERP_GUIDANCE = 4.0
INTERP_NEW_FRAMES = 3  # between each pair of keyframes: 8 -> 29 frames
IMAGE_SR_GUIDANCE, IMAGE_SR_NOISE_LEVEL = 4.0, 150
SR1_GUIDANCE, SR1_NOISE_LEVEL, SR1_SCALE = 7.0, 250, 4
SR1_WINDOW, SR1_STRIDE = 8, 7  # 29 frames: windows at 0, 7, 14, 21, each starting on the last one's final frame
SR2_GUIDANCE, SR2_STRENGTH = 15.0, 0.8  # 15: diffusers' VideoToVideoSDPipeline default, which the authors keep


class ShippedScheduler:
    """`from_pretrained` of the scheduler class a folder's scheduler_config.json names (DDPM for Show-1's
    pixel stages), so that `load_component` finds it as it finds any component."""

    @classmethod
    def from_pretrained(cls, source: str, subfolder: str, **options) -> SchedulerMixin:
        config = DDPMScheduler.load_config(source, subfolder=subfolder, **options)
        name = config.get("_class_name", "")
        scheduler = getattr(diffusers, name, None)
        if not (isinstance(scheduler, type) and issubclass(scheduler, SchedulerMixin)):
            raise ValueError(f"{subfolder}/scheduler_config.json names {name!r}, not a diffusers scheduler")
        return scheduler.from_config(config)


@dataclass
class PixelStage:
    """A pixel-space stage: its UNet, its sampling scheduler and, for super-resolution, the scheduler that
    noises the upscaled conditioning frames."""

    unet: torch.nn.Module
    scheduler: SchedulerMixin
    noising: DDPMScheduler | None

    @classmethod
    def load(cls, key: str, source: str, network: type, in_channels: int, noise_level: bool) -> PixelStage:
        """The stage at `source` (recipe key `key` names it), checked to take what the cascade gives it."""
        try:
            if network is Show1UNet3DConditionModel:
                from sma.backbones.show1 import check_strict

                unet, report = load_component(network, source, "unet", output_loading_info=True)
                check_strict(report, source)
            else:
                unet = load_component(network, source, "unet")
            scheduler = load_component(ShippedScheduler, source, "scheduler")
            noising = load_component(DDPMScheduler, source, "image_noising_scheduler") if noise_level else None
        except ModelNotFoundError as error:
            raise SmaError(f"`{key}`: {error}") from error
        config = unet.config
        if config.in_channels != in_channels or (config.class_embed_type is not None) != noise_level:
            takes = "a noise level" if noise_level else "no noise level"
            raise SmaError(
                f"`{key}`: {source} has a UNet of {config.in_channels} input channels and class_embed_type "
                f"{config.class_embed_type!r}; this stage needs {in_channels} channels and {takes}"
            )
        return cls(unet.requires_grad_(False).eval(), scheduler, noising)


def load_stage_model(key: str, source: str) -> TextToVideoModel:
    try:
        return TextToVideoModel.from_pretrained(source)
    except ModelNotFoundError as error:
        raise SmaError(f"`{key}`: {error}") from error


@contextmanager
def on_device(networks: list[torch.nn.Module], device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """The networks on `device` in `dtype` inside the block; freed afterwards, with the accelerator's cache."""
    for network in networks:
        network.to(device, dtype)
    try:
        yield
    finally:
        for network in networks:
            network.to("cpu")
        gc.collect()
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()


def step_per_frame(scheduler: SchedulerMixin, output, t, sample, generator) -> torch.Tensor:
    """One scheduler step with frames folded into the batch, as the authors step: dynamic thresholding then
    takes each frame's own quantile."""
    if sample.ndim == 4:
        return scheduler.step(output, t, sample, generator=generator).prev_sample
    batch, _, frames = sample.shape[:3]
    fold = lambda video: video.transpose(1, 2).flatten(0, 1)  # noqa: E731
    previous = scheduler.step(fold(output), t, fold(sample), generator=generator).prev_sample
    return previous.unflatten(0, (batch, frames)).transpose(1, 2)


@torch.no_grad()
def denoise_pixels(
    stage: PixelStage,
    noise: torch.Tensor,
    condition: torch.Tensor,
    text: torch.Tensor,
    negative: torch.Tensor,
    steps: int,
    guidance: float,
    generator: torch.Generator,
    noise_level: int | None = None,
    description: str = "",
) -> torch.Tensor:
    """IF-style sampling: the noisy pixels joined by `condition` along the channels, classifier-free guidance
    on the noise channels, the conditional branch's learned variance handed to the scheduler."""
    unet, scheduler = stage.unet, stage.scheduler
    channels, dtype = noise.shape[1], unet.dtype
    embeddings = torch.cat([negative, text]).to(dtype)
    options = {}
    if noise_level is not None:
        options["class_labels"] = torch.full((2 * noise.shape[0],), noise_level, device=noise.device)
    scheduler.set_timesteps(steps, device=noise.device)
    latents = noise
    for t in bar(iterable=scheduler.timesteps, desc=description, leave=False):
        model_input = scheduler.scale_model_input(torch.cat([latents, condition], dim=1), t).to(dtype)
        output = unet(torch.cat([model_input] * 2), t, encoder_hidden_states=embeddings, **options).sample.float()
        unconditional, conditional = output.chunk(2)
        uncond_noise, cond_noise = unconditional[:, :channels], conditional[:, :channels]
        output = torch.cat([uncond_noise + guidance * (cond_noise - uncond_noise), conditional[:, channels:]], dim=1)
        if scheduler.config.variance_type not in ("learned", "learned_range"):
            output = output[:, :channels]
        latents = step_per_frame(scheduler, output, t, latents, generator)
    return latents


def interpolate(stage: PixelStage, keyframes, text, negative, steps: int, seed: int) -> torch.Tensor:
    """(b, 3, f, h, w) keyframes -> (b, 3, 4 (f - 1) + 1, h, w): each pair of keyframes and 3 new frames
    between them, generated from the pair (its trilinear blend and a mask marking the two known frames).

    Every pair starts from the same noise, as the authors draw it once; a pair's end frame is regenerated
    too, and the next pair's output replaces it.
    """
    batch, channels, frames, height, width = keyframes.shape
    span = INTERP_NEW_FRAMES + 2
    device = keyframes.device
    start = gaussian_like(torch.empty(batch, channels, span, height, width, device=device), generator(device, seed))
    mask = torch.zeros(batch, 1, span, height, width, device=device)
    mask[:, :, [0, -1]] = 1
    video = torch.zeros(batch, channels, (span - 1) * (frames - 1) + 1, height, width, device=device)
    for index in range(frames - 1):
        pair = keyframes[:, :, index : index + 2]
        blend = F.interpolate(pair, size=(span, height, width), mode="trilinear", align_corners=True)
        first = (span - 1) * index
        video[:, :, first : first + span] = denoise_pixels(
            stage,
            start,
            torch.cat([blend, mask], dim=1),
            text,
            negative,
            steps,
            INTERP_GUIDANCE,
            generator(device, seed),
            description=f"interp {index + 1}/{frames - 1}",
        )
    return video


def upscaled_condition(stage: PixelStage, frames: torch.Tensor, size, level: int, noise_generator) -> torch.Tensor:
    """Frames (b, 3, [f,] h, w) enlarged bilinearly to `size` and noised to `level` (noise augmentation)."""
    flat = frames.transpose(1, 2).flatten(0, 1) if frames.ndim == 5 else frames
    upscaled = F.interpolate(flat, size=size, mode="bilinear", align_corners=True)
    if frames.ndim == 5:
        upscaled = upscaled.unflatten(0, (frames.shape[0], frames.shape[2])).transpose(1, 2)
    noise = gaussian_like(upscaled, noise_generator)
    levels = torch.full((upscaled.shape[0],), level, device=upscaled.device)
    return stage.noising.add_noise(upscaled, noise, levels)


def super_resolve_image(stage: PixelStage, image, text, negative, steps: int, seed: int) -> torch.Tensor:
    """IF-II-L on one frame (b, 3, h, w) -> (b, 3, 4h, 4w)."""
    size = (image.shape[-2] * SR1_SCALE, image.shape[-1] * SR1_SCALE)
    rng = generator(image.device, seed)
    noise = gaussian_like(torch.empty(image.shape[0], 3, *size, device=image.device), rng)
    noise = noise * stage.scheduler.init_noise_sigma
    condition = upscaled_condition(stage, image, size, IMAGE_SR_NOISE_LEVEL, rng)
    return denoise_pixels(
        stage, noise, condition, text, negative, steps, IMAGE_SR_GUIDANCE, rng, IMAGE_SR_NOISE_LEVEL, "sr1 image"
    )


def windows(frames: int) -> list[int]:
    """First frames of the sr1 windows; a last window ends on the last frame where the stride misses it."""
    if frames <= SR1_WINDOW:
        return [0]
    starts = list(range(0, frames - SR1_WINDOW + 1, SR1_STRIDE))
    return starts if starts[-1] + SR1_WINDOW == frames else [*starts, frames - SR1_WINDOW]


def super_resolve_video(stage: PixelStage, first: torch.Tensor, video, text, negative, steps: int, seed: int):
    """(b, 3, f, h, w) -> (b, 3, f, 4h, 4w) in windows of 8 frames. Each window's first conditioning frame is
    clean: `first` (the image model's) for the first window, the frame already made for the others."""
    batch, channels, frames, height, width = video.shape
    size = (height * SR1_SCALE, width * SR1_SCALE)
    result = torch.zeros(batch, channels, frames, *size, device=video.device)
    for start in windows(frames):
        clip = video[:, :, start : start + SR1_WINDOW]
        rng = generator(video.device, seed)
        noise = gaussian_like(torch.empty(batch, channels, clip.shape[2], *size, device=video.device), rng)
        noise = noise * stage.scheduler.init_noise_sigma
        condition = upscaled_condition(stage, clip, size, SR1_NOISE_LEVEL, rng)
        condition[:, :, 0] = first if start == 0 else result[:, :, start]
        result[:, :, start : start + SR1_WINDOW] = denoise_pixels(
            stage, noise, condition, text, negative, steps, SR1_GUIDANCE, rng, SR1_NOISE_LEVEL, f"sr1 @{start}"
        )
    return result


@torch.no_grad()
def refine_latent(model: TextToVideoModel, scheduler, video, prompt: str, negative: str, settings, seed):
    """sr2: frames resized to (sr2_height, sr2_width), encoded, noised to strength 0.8 of the schedule and
    denoised from there (video-to-video), then decoded."""
    size = (settings.sr2_height, settings.sr2_width)
    model.check_size(*size)
    flat = video.transpose(1, 2).flatten(0, 1).float()
    resized = F.interpolate(flat, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    resized = resized.unflatten(0, (video.shape[0], video.shape[2])).transpose(1, 2)
    latents = model.encode_video(resized.to(model.device, model.dtype)).to(model.dtype)
    steps = settings.sr2_steps
    scheduler.set_timesteps(steps, device=model.device)
    skipped = steps - min(int(steps * SR2_STRENGTH), steps)
    timesteps = scheduler.timesteps[skipped * scheduler.order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(skipped * scheduler.order)
    rng = generator(model.device, seed)
    latents = scheduler.add_noise(latents, gaussian_like(latents, rng), timesteps[:1])
    denoise = guided(model.predict, model.encode_prompts([prompt]), model.encode_prompts([negative]), SR2_GUIDANCE)
    for t in bar(iterable=timesteps, desc="sr2", leave=False):
        output = denoise(scheduler.scale_model_input(latents, t), t)
        latents = step_per_frame(scheduler, output, t, latents, rng)
    return model.decode_latents(latents)


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A fresh generator per call, as the authors seed each pipeline call with the same seed."""
    return torch.Generator(device=device).manual_seed(seed)


def run_cascade(
    keyframes: list[torch.Tensor],
    prompts: list[str],
    texts: list[torch.Tensor],
    negative: torch.Tensor,
    settings,
    device: torch.device | str,
    dtype: torch.dtype,
    seed: int,
) -> Iterator[tuple[str, list[torch.Tensor]]]:
    """Each stage after the base, up to `settings.stages` (the `show1` section, `Show1Options`, which imports this
    module when it runs and so is not imported here), on every video: (stage name, videos (b, 3, f, h, w)
    in [-1, 1] on the CPU) per stage. Stage-major, so each stage's networks load and visit `device` once.

    `texts[i]` are the T5 states of `prompts[i]`, `negative` those of the negative prompt.
    """
    videos = [video.float() for video in keyframes]
    device = torch.device(device)
    negative = negative.to(device)
    for stage_name in settings.later_stages():
        outputs = []
        if stage_name == "interp":
            stage = PixelStage.load("show1.interpolation", settings.interpolation, Show1UNet3DConditionModel, 7, False)
            with on_device([stage.unet], device, dtype):
                for video, text, index in zip(videos, texts, range(len(videos)), strict=True):
                    video, text = video.to(device), text.to(device)
                    outputs.append(interpolate(stage, video, text, negative, settings.interp_steps, seed + index))
        elif stage_name == "sr1":
            image = PixelStage.load("show1.image_sr", settings.image_sr, UNet2DConditionModel, 6, True)
            firsts = []
            with on_device([image.unet], device, dtype):
                for index, (video, text) in enumerate(zip(videos, texts, strict=True)):
                    frame, text = video[:, :, 0].to(device), text.to(device)
                    steps = settings.image_sr_steps
                    firsts.append(super_resolve_image(image, frame, text, negative, steps, seed + index))
            stage = PixelStage.load("show1.sr1", settings.sr1, Show1UNet3DConditionModel, 6, True)
            with on_device([stage.unet], device, dtype):
                for index, (video, text, first) in enumerate(zip(videos, texts, firsts, strict=True)):
                    video, text = video.to(device), text.to(device)
                    outputs.append(
                        super_resolve_video(stage, first, video, text, negative, settings.sr1_steps, seed + index)
                    )
        else:
            model = load_stage_model("show1.sr2", settings.sr2)
            scheduler = load_component(ShippedScheduler, settings.sr2, "scheduler")
            with on_device(model.networks(), device, dtype):
                for index, (video, prompt) in enumerate(zip(videos, prompts, strict=True)):
                    outputs.append(
                        refine_latent(
                            model, scheduler, video, prompt, settings.sr2_negative_prompt, settings, seed + index
                        )
                    )
        videos = [output.float().clamp(-1, 1).cpu() for output in outputs]
        yield stage_name, videos


@contextmanager
def cascade_after(
    model: Show1Model,
    keyframes: list[torch.Tensor],
    targets: list[str],
    negative_prompt: str,
    settings,
    seed: int,
) -> Iterator[Iterator[tuple[str, list[torch.Tensor]]]]:
    """`run_cascade` on the base stage's videos of `targets` (`Show1Options.run_later_stages`).

    T5 encodes the prompts first and is freed, and the base UNet leaves the accelerator: each stage then
    has it to itself. The base UNet is back where it was on leaving.
    """
    texts = [model.encode_prompts([target]).cpu() for target in targets]
    negative = model.encode_prompts([negative_prompt]).cpu()
    model.release_text_encoder()
    device, dtype = model.device, model.dtype
    model.to("cpu")
    if device.type == "cuda":
        torch.cuda.empty_cache()
    try:
        yield run_cascade(keyframes, targets, texts, negative, settings, device, dtype, seed)
    finally:
        model.to(device, dtype)
