"""FlowMotion: zero-shot motion transfer by steering the sampled latent with the denoised estimate's motion.

FlowMotion (Wang, Xu, Xiao, Chen, CVPR 2026; HKUST-LongGroup/FlowMotion, run.py) trains nothing and
never differentiates the video model. In each of the first sampling steps, Adam moves the latent so
that the model's denoised estimate of the video, and the differences between that estimate's frames,
match those of the reference noised to the same level and denoised. The velocity is predicted
without gradient, so the loss reaches the latent directly through x0 = y - sigma u. SMA can replace
the frame-difference term or join it (`flowmotion.motion_loss`). Wan is sampled as the official code
does; every other backbone through the same Euler steps in DDIM's coordinates (`EulerSchedule`). What
follows the official code and where it differs: docs/methods.md. On an image-to-video Wan the reference's estimate
is given its own first frame, the sampled video its target's image (docs/image-to-video.md), and both estimates have
that image's latent as frame 0.
"""

from __future__ import annotations

from typing import Any

import torch

from sma.backbones.dispatch import is_wan, load_text_to_video
from sma.backbones.hub import model_index
from sma.backbones.latent_video import LatentVideoModel
from sma.backbones.wan import WanModel, check_frame_count, latent_frame_count
from sma.config import MOTION_LOSSES, PRECISIONS, TransferConfig
from sma.errors import SmaError
from sma.methods.base import ZeroShotMethod
from sma.methods.image_to_video import ImageConditioned, check_image_settings
from sma.objectives import diffusion_mse, with_sma
from sma.progress import track
from sma.sampling import EulerSchedule, gaussian_like, guided

SOURCES = ("latent_prediction", "clean_latent")


def frame_differences(video: torch.Tensor) -> torch.Tensor:
    """FlowMotion's motion representation of (b, c, f, h, w): |v[n+1] - v[n]| for every n, then |v[n] - v[m]| for
    every ordered pair n != m, stacked along the frame axis: (b, c, (f - 1) + f (f - 1), h, w)."""
    frames = video.shape[2]
    consecutive = (video[:, :, 1:] - video[:, :, :-1]).abs()
    pairs = (video[:, :, :, None] - video[:, :, None, :]).abs()
    others = ~torch.eye(frames, dtype=torch.bool, device=video.device)
    return torch.cat([consecutive, pairs[:, :, others]], dim=2)


def regulated(velocity: torch.Tensor, mean_velocity: torch.Tensor, scale: float) -> torch.Tensor:
    """The velocity's part along the mean velocity kept, the part across it times `scale`; per latent voxel,
    over the channels (as the official code projects along dim 1)."""
    along = (velocity * mean_velocity).sum(1, keepdim=True) / ((mean_velocity**2).sum(1, keepdim=True) + 1e-8)
    parallel = along * mean_velocity
    return parallel + scale * (velocity - parallel)


def uses_wan(config: TransferConfig) -> bool:
    return is_wan(model_index(config.model, config.revision or None))


class FlowMotion(ImageConditioned, ZeroShotMethod):
    """FlowMotion's guidance on any backbone with a denoised estimate: Wan (text or image to video), ZeroScope /
    ModelScope, Show-1's base, AnimateDiff and the embedded models. Latents stay in float32, the model runs in its
    dtype."""

    name = "flowmotion"
    takes_motion_adapter = True
    takes_images = True
    samplers = ("euler",)  # Euler on the model's own timesteps: UniPC's flow sigmas for Wan, DDIM's otherwise
    sample_dtype = torch.float32

    @classmethod
    def validate(cls, config: TransferConfig) -> None:
        options = config.options
        if options.guidance_steps < 0 or options.iterations < 0:
            raise SmaError("flowmotion.guidance_steps and flowmotion.iterations must be >= 0")
        for name in ("learning_rate", "latent_weight", "difference_weight", "regulate_scale"):
            if getattr(options, name) < 0:
                raise SmaError(f"flowmotion.{name} must be >= 0, got {getattr(options, name)}")
        if options.flow_shift is not None and options.flow_shift <= 0:
            raise SmaError(f"flowmotion.flow_shift must be above 0, got {options.flow_shift}")
        if options.text_tokens < 1:
            raise SmaError(f"flowmotion.text_tokens must be >= 1, got {options.text_tokens}")
        if options.text_precision not in PRECISIONS:
            raise SmaError(
                f"flowmotion.text_precision must be one of {', '.join(PRECISIONS)}, got {options.text_precision!r}"
            )
        if options.source not in SOURCES:
            raise SmaError(f"flowmotion.source must be one of {', '.join(SOURCES)}, got {options.source!r}")
        if options.motion_loss not in MOTION_LOSSES:
            raise SmaError(
                f"flowmotion.motion_loss must be one of {', '.join(MOTION_LOSSES)}, got {options.motion_loss!r}"
            )
        check_image_settings(config)

    @classmethod
    def uses_sma(cls, config: TransferConfig) -> bool:
        """Only where `flowmotion.motion_loss` asks for it (sma, both), and `sma.enabled` (`--no-sma` turns it off)."""
        return config.sma.enabled and config.options.motion_loss != "official"

    @classmethod
    def sma_switch(cls, enabled: bool) -> dict[str, Any]:
        """SMA on: beside the official terms (`both`), as a regulariser joins a loss; off: the official loss."""
        return {"sma.enabled": enabled, "flowmotion.motion_loss": "both" if enabled else "official"}

    @classmethod
    def motion_frames(cls, config: TransferConfig) -> tuple[int, str]:
        """On Wan, SMA compares the latent frames after the first (the first video frame alone), as motionlora."""
        if not uses_wan(config):
            return config.video.frames, "frames"
        return latent_frame_count(config.video.frames) - 1, "latent frames"

    @classmethod
    def load_model(cls, config: TransferConfig, device: str | torch.device = "cpu") -> LatentVideoModel:
        options, motion_adapter = config.options, config.motion_adapter or None
        text = {"text_tokens": options.text_tokens, "text_dtype": PRECISIONS[options.text_precision]}
        return load_text_to_video(config.model, device, config.revision or None, motion_adapter, None, text)

    def __init__(self, model: LatentVideoModel, config: TransferConfig) -> None:
        super().__init__(model, config)
        self.wan = isinstance(model, WanModel)
        if self.wan:
            check_frame_count(config.video.frames)
        self.sma = config.sma.build() if self.uses_sma(config) else None

    def condition_on(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """On an image-to-video model, the reference's first frame as its image."""
        return self.image_conditions(clip)

    def set_conditions(self, conditions: dict[str, torch.Tensor]) -> None:
        self.set_image_conditions(conditions)

    def schedule(self, device: torch.device) -> EulerSchedule:
        return EulerSchedule(self.model.scheduler.config, self.config.generate.steps, device, self.options.flow_shift)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The model on float32 latents cast to its dtype, as the official code; float32 output."""
        return self.model.predict(latents.to(self.model.dtype), timesteps, text).float()

    @torch.no_grad()
    def generate(self, reference_latents: torch.Tensor, target: str, seed: int) -> torch.Tensor:
        """From fresh noise, the first `flowmotion.guidance_steps` steps guided toward the reference's motion."""
        clean = reference_latents.to(self.model.device, torch.float32)
        generator = torch.Generator(device=clean.device).manual_seed(seed)
        return self.sample(gaussian_like(clean, generator), target, generator, clean)

    def sample_from(self, start: torch.Tensor, target: str, phase: str = "sample") -> torch.Tensor:
        """The same Euler steps from `start`, nothing guided: the untuned baseline (`generate_untuned`)."""
        return self.sample(start, target, None, None, phase)

    def sample(
        self,
        noise: torch.Tensor,
        target: str,
        generator: torch.Generator | None,
        reference: torch.Tensor | None,
        phase: str = "sample",
    ) -> torch.Tensor:
        """Euler steps from `noise` with classifier-free guidance of `target` (given its image); guided toward
        `reference` first."""
        with self.conditioned_on(self.target_condition(target)):
            return self.with_first_frame(self.sample_conditioned(noise, target, generator, reference, phase))

    def sample_conditioned(
        self, noise: torch.Tensor, target: str, generator: torch.Generator | None, reference, phase: str
    ) -> torch.Tensor:
        """`sample`'s steps, the model given the target's image (when there is one) by the caller."""
        model, settings = self.model, self.config.generate
        schedule = self.schedule(noise.device)
        condition, negative = model.encode_prompts([target]), model.encode_prompts([settings.negative_prompt])
        denoise = guided(self.predict, condition, negative, self.guidance_scale())
        guided_steps = 0 if reference is None else self.options.guidance_steps
        empty = model.encode_prompts([""]) if guided_steps else None  # the official source prompt
        self.guidance_log = []
        latents = noise
        with self.phases(phase, steps=settings.steps):
            for index, t in enumerate(track(schedule.timesteps, phase, len(schedule.timesteps))):
                if index < guided_steps:
                    source = self.source_estimate(reference, schedule, index, empty, generator)
                    latents = self.guide(latents, noise, source, schedule, index, denoise)
                latents = schedule.step(latents, schedule.velocity(denoise(latents, t), latents, index), index)
        return latents

    def source_estimate(
        self, clean: torch.Tensor, schedule: EulerSchedule, index: int, empty: torch.Tensor, generator
    ) -> torch.Tensor:
        """The reference at step `index`: noised with fresh noise and denoised under the empty prompt (the official
        source guidance 1.5 mixes two identical predictions, so one is run), or the clean latents."""
        if self.options.source == "clean_latent":
            return clean
        noisy = schedule.noised(clean, gaussian_like(clean, generator), index)
        with self.conditioned_on(self.reference_condition):
            velocity = schedule.velocity(self.predict(noisy, schedule.timesteps[index], empty), noisy, index)
            return self.with_first_frame(schedule.estimate(noisy, velocity, index))

    def guide(
        self,
        latents: torch.Tensor,
        start: torch.Tensor,
        source: torch.Tensor,
        schedule: EulerSchedule,
        index: int,
        denoise,
    ) -> torch.Tensor:
        """A fresh Adam on the latent; each iteration predicts the velocity without gradient, regulates it (after the
        first step) and moves the latent against the motion loss of the two denoised estimates. The source's frame
        differences are taken once per step, as the official code does."""
        options, t = self.options, schedule.timesteps[index]
        differences = frame_differences(source) if self.uses_differences else None
        mean_velocity = schedule.mean_velocity(latents, start, index) if index > 0 else None
        optimized = latents.detach().to(torch.float32, copy=True).requires_grad_(True)
        optimizer = torch.optim.Adam([optimized], lr=options.learning_rate)
        for iteration in range(options.iterations):
            velocity = schedule.velocity(denoise(optimized.detach(), t), optimized.detach(), index)
            if mean_velocity is not None:
                velocity = regulated(velocity, mean_velocity, options.regulate_scale)
            with torch.enable_grad():
                estimate = self.with_first_frame(schedule.estimate(optimized, velocity, index))
                terms = self.motion_loss(source, differences, estimate)
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
            optimizer.step()
            record = {name: round(value.item(), 6) for name, value in terms.items()}
            self.guidance_log.append({"timestep": int(t), "iteration": iteration, **record})
        return optimized.detach()

    @property
    def uses_differences(self) -> bool:
        """The official frame-difference term: unless SMA replaces it (SMA off, `--no-sma`, is the official loss)."""
        return self.sma is None or self.options.motion_loss == "both"

    def motion_loss(
        self, source: torch.Tensor, source_differences: torch.Tensor | None, estimate: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """alpha MSE of the estimates, + beta MSE of their frame differences (official, both; the source's given),
        + SMA on their frame residuals (sma, both; on Wan from latent frame 1); float32. "loss" is the total."""
        options = self.options
        terms = {"latent": options.latent_weight * diffusion_mse(estimate, source)}
        if source_differences is not None:
            difference = diffusion_mse(frame_differences(estimate), source_differences)
            terms["difference"] = options.difference_weight * difference
        if self.sma is None:
            return with_sma(terms)
        first = 1 if self.wan else 0
        return with_sma(terms, [self.sma.terms(source[:, :, first:], estimate[:, :, first:])], self.sma_share)
