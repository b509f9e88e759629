"""MotionLoRA on Wan 2.1: a LoRA on the transformer's attention, trained with flow matching (+ SMA).

As LoRA trainers for Wan train motion LoRAs (musubi-tuner, docs/methods.md): peft LoRA on the
q/k/v/out projections of the self- and cross-attention of every transformer block (and, with
`feed_forward`, the two feed-forward layers: musubi-tuner's whole block set); flow-matching
loss `|v_hat - (eps - x0)|^2` at `x_t = (1 - s) x0 + s eps`, timestep `1000 s`, with s drawn as
musubi-tuner's "shift" sampling: `u = sigmoid(n)`, n standard normal, `s = k u / (1 + (k - 1) u)`.
SMA compares the reference latents with `x0_hat = x_t - s v_hat` along the latent frames.

Appearance debiasing (`appearance_debiasing`), MotionDirector's idea on a transformer that has no
spatial and temporal layers: two LoRA sets on the same layers. The "appearance" set learns
single frames (each reference frame encoded alone, as the VAE encodes an image: one latent
frame), with the "motion" set off; the "motion" set learns the clip (appearance set on, dropped
with probability `appearance_dropout`) with MotionDirector's debiased term added. Each set is
updated only by its own loss; generation uses the motion set alone.

On an image-to-video Wan (2.2 TI2V-5B, 2.1 I2V-14B; docs/image-to-video.md) the reference trains conditioned on its
own first frame, and each target is generated from its image (`image`, `target_images`). On TI2V the given first
latent frame is left out of the flow-matching loss (the model is not asked to denoise it).

On Wan 2.2 A14B (two experts, backbones/wan.py) `experts` says whose LoRA trains: `high` (the high-noise expert,
`transformer`), `low` (`transformer_2`) or `both`, each LoRA of its own, as DiffSynth-Studio trains one per expert.
Each expert's LoRA trains only at the timesteps it serves: the shifted noise levels drawn within its side of the
boundary (`s >= boundary_ratio` for the high-noise expert), which is musubi-tuner's `--min_timestep/--max_timestep`
with `--preserve_distribution_shape`; with `both`, each step's level is drawn over the whole range and the expert it
falls to trains, as musubi-tuner switches experts. The other expert waits on the CPU.
"""

from __future__ import annotations

import re
import warnings
from typing import ClassVar

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer

from sma.backbones.dispatch import load_text_to_video
from sma.backbones.wan import HIGH_NOISE, LOW_NOISE, TEMPORAL_FACTOR, WanModel, check_frame_count, latent_frame_count
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.methods.base import TrainedMethod
from sma.methods.image_to_video import ImageConditioned, check_image_settings
from sma.objectives import diffusion_mse, motiondirector_temporal_loss, with_sma
from sma.sampling import FLOW_SAMPLERS, gaussian_like, make_scheduler

ATTENTION = re.compile(r"blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)")
FEED_FORWARD = re.compile(r"blocks\.\d+\.ffn\.net\.(0\.proj|2)")
NO_DEBIASING_FROM_IMAGES = (
    "motionlora.appearance_debiasing learns the look from single frames; from an image the image sets the look (and "
    "an image-to-video model takes no single frames): turn it off"
)


EXPERTS = {"high": (HIGH_NOISE,), "low": (LOW_NOISE,), "both": (HIGH_NOISE, LOW_NOISE)}


def shifted_sigmas(count: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    """`count` noise levels in (0, 1): u = sigmoid(n), n standard normal, then shift * u / (1 + (shift - 1) u)."""
    u = torch.randn(count, generator=generator, device=generator.device).sigmoid()
    return shift * u / (1 + (shift - 1) * u)


def _normal_quantile(sigma: float, shift: float) -> torch.Tensor:
    """Where noise level `sigma` falls in the standard normal's cumulative distribution under `shifted_sigmas`."""
    u = torch.tensor(sigma / (shift - (shift - 1) * sigma), dtype=torch.float64)
    return torch.special.ndtr(torch.logit(u))


def shifted_sigmas_within(
    count: int, shift: float, low: float, high: float, generator: torch.Generator
) -> torch.Tensor:
    """`shifted_sigmas` kept to [low, high): the same distribution's shape on that range (the normal drawn by
    inverting its cumulative distribution between the range's ends), one uniform draw per level."""
    start, end = _normal_quantile(low, shift), _normal_quantile(high, shift)
    v = torch.rand(count, generator=generator, device=generator.device, dtype=torch.float64)
    u = torch.special.ndtri(start + (end - start) * v).sigmoid()
    return (shift * u / (1 + (shift - 1) * u)).float()


class MotionLoRA(ImageConditioned, TrainedMethod):
    """A motion LoRA on Wan, flow matching + SMA; generation as diffusers' WanPipeline (WanImageToVideoPipeline
    from an image)."""

    name = "motionlora"
    takes_images = True
    samplers = FLOW_SAMPLERS
    sample_dtype = torch.float32  # as WanPipeline: the transformer casts its inputs to its own dtype
    adapters: ClassVar[tuple[str, ...]] = ("motion", "appearance")
    frame_latents: torch.Tensor | None = None  # reference frames encoded one by one (appearance debiasing)

    @classmethod
    def validate(cls, config: TransferConfig) -> None:
        options, frames = config.options, config.video.frames
        if options.lora_rank < 1:
            raise SmaError(f"motionlora.lora_rank must be >= 1, got {options.lora_rank}")
        for name in ("lora_alpha", "timestep_shift", "sample_shift"):
            if getattr(options, name) <= 0:
                raise SmaError(f"motionlora.{name} must be above 0, got {getattr(options, name)}")
        if not 0.0 <= options.appearance_dropout < 1.0:
            raise SmaError(f"motionlora.appearance_dropout must be in [0, 1), got {options.appearance_dropout}")
        if options.experts not in EXPERTS:
            raise SmaError(f"motionlora.experts must be one of {', '.join(EXPERTS)}, got {options.experts!r}")
        check_image_settings(config)
        if options.appearance_debiasing and (config.image or config.target_images):
            raise SmaError(NO_DEBIASING_FROM_IMAGES)
        check_frame_count(frames)
        least = 2 * TEMPORAL_FACTOR + 1 if not options.sma_first_latent_frame else TEMPORAL_FACTOR + 1
        if frames < least:
            raise SmaError(f"motionlora needs at least {least} frames (two latent frames of motion), got {frames}")

    @classmethod
    def motion_frames(cls, config: TransferConfig) -> tuple[int, str]:
        latent = latent_frame_count(config.video.frames)
        return latent - (0 if config.options.sma_first_latent_frame else 1), "latent frames"

    @classmethod
    def load_model(cls, config: TransferConfig, device: str | torch.device = "cpu") -> WanModel:
        return load_text_to_video(config.model, device, config.revision or None, wan=True)

    @property
    def debiasing(self) -> bool:
        return self.options.appearance_debiasing

    def trained_experts(self) -> dict[str, torch.nn.Module]:
        """The transformers that get a LoRA, by pipeline component: the one of a one-transformer Wan, or the
        `experts` of Wan 2.2 A14B."""
        denoisers = self.model.denoisers()
        if len(denoisers) == 1:
            if self.options.experts != "both":
                raise SmaError(
                    f"motionlora.experts chooses among Wan 2.2 A14B's two experts; {self.config.model} has one "
                    "transformer: leave it at both"
                )
            return denoisers
        return {name: denoisers[name] for name in EXPERTS[self.options.experts]}

    def noise_levels(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """The training sigmas: musubi-tuner's shifted draw, kept to the trained expert's side of the boundary when
        one expert of two trains (with `both`, the draw picks the expert)."""
        shift, boundary = self.options.timestep_shift, self.model.boundary_ratio
        experts = list(self.trained_experts())
        if boundary is None or len(experts) == 2:
            return shifted_sigmas(count, shift, generator)
        low, high = (boundary, 1.0) if experts == [HIGH_NOISE] else (0.0, boundary)
        return shifted_sigmas_within(count, shift, low, high, generator)

    def lora_targets(self) -> list[str]:
        """Full names of the transformer's Linear layers that get the LoRA."""
        patterns = [ATTENTION, FEED_FORWARD] if self.options.feed_forward else [ATTENTION]
        return [
            name
            for name, module in self.model.unet.named_modules()
            if isinstance(module, torch.nn.Linear) and any(pattern.fullmatch(name) for pattern in patterns)
        ]

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        if self.debiasing and self.image_conditioned:  # I2V-14B: conditioned on an image even without `image`
            raise SmaError(NO_DEBIASING_FROM_IMAGES)
        options, targets, experts = self.options, self.lora_targets(), self.trained_experts()
        trainable = {}
        for expert, transformer in experts.items():
            with warnings.catch_warnings():  # peft warns that a second adapter is added: that is the design
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                for adapter in self.adapters[: 2 if self.debiasing else 1]:
                    config = LoraConfig(r=options.lora_rank, lora_alpha=options.lora_alpha, target_modules=targets)
                    inject_adapter_in_model(config, transformer, adapter_name=adapter)
            for module in transformer.modules():
                if isinstance(module, LoraLayer):
                    module.set_adapter(list(module.lora_A))  # both sets active; `use` switches them by scale
            transformer.train(transformer.training)  # new LoRA modules start in training mode whatever the model's
            prefix = f"{expert}." if len(self.model.denoisers()) == 2 else ""  # A14B: each name says its expert
            trainable |= {prefix + name: p for name, p in transformer.named_parameters() if "lora_" in name}
        return self.train_only(trainable)

    def adapter_parameters(self, adapter: str) -> list[torch.nn.Parameter]:
        return [parameter for name, parameter in self.trainable.items() if f".{adapter}." in name]

    def use(self, appearance: bool, motion: bool) -> None:
        """Switch each LoRA set on (its scale alpha / rank) or off (scale 0)."""
        if not self.debiasing:
            return
        for module in (module for network in self.model.denoisers().values() for module in network.modules()):
            if isinstance(module, LoraLayer):
                for adapter, enabled in (("appearance", appearance), ("motion", motion)):
                    module.set_scale(adapter, 1.0 if enabled else 0.0)

    def condition_on(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """With appearance debiasing, every reference frame encoded alone (as an image: one latent frame each); on
        an image-to-video model, the reference's first frame as its image."""
        if not self.debiasing:
            return self.image_conditions(clip)
        frames = clip.permute(2, 0, 1, 3, 4).unsqueeze(3)  # (f, b, 3, 1, h, w): one single-frame video per frame
        return {"frame_latents": torch.cat([self.model.encode_video(frame) for frame in frames])}

    def set_conditions(self, conditions: dict[str, torch.Tensor]) -> None:
        latents = conditions.get("frame_latents")
        self.frame_latents = None if latents is None else latents.to(self.model.device)
        self.set_image_conditions(conditions)

    def flow_step(self, latents: torch.Tensor, text: torch.Tensor, generator: torch.Generator):
        """One flow-matching prediction: (predicted velocity, its target eps - x0, noisy latents, sigmas), float32."""
        noise = gaussian_like(latents, generator)
        sigmas = self.noise_levels(latents.shape[0], generator).to(latents.device)
        scale = sigmas.view(-1, *([1] * (latents.ndim - 1)))
        noisy = (1 - scale) * latents + scale * noise
        timesteps = sigmas * self.model.scheduler.config.num_train_timesteps
        velocity = self.model.predict(noisy, timesteps, text).float()
        return velocity, noise - latents, noisy, scale

    def sma_frames(self, video: torch.Tensor) -> torch.Tensor:
        """The latent frames SMA compares: all but the first (the first video frame alone), unless asked."""
        return video if self.options.sma_first_latent_frame else video[:, :, 1:]

    def loss(self, latents: torch.Tensor, text: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        with self.conditioned_on(self.reference_condition):
            return self.conditioned_loss(latents, text, generator)

    def conditioned_loss(self, latents: torch.Tensor, text: torch.Tensor, generator: torch.Generator):
        """`loss` with the model given the reference's first frame (on an image-to-video model)."""
        device = generator.device
        terms = {}
        keep_appearance = self.debiasing
        if self.debiasing:
            draws = torch.rand(2, generator=generator, device=device).tolist()
            keep_appearance = draws[0] >= self.options.appearance_dropout
            first = 0 if self.options.sma_first_latent_frame else 1
            anchor = first + int(draws[1] * (latents.shape[2] - first))
            if keep_appearance:
                frame = int(torch.randint(0, len(self.frame_latents), (1,), generator=generator, device=device))
                single = self.frame_latents[frame : frame + 1].expand(latents.shape[0], -1, -1, -1, -1)
                self.use(appearance=True, motion=False)
                velocity, target, _, _ = self.flow_step(single, text, generator)
                terms["appearance"] = diffusion_mse(velocity, target)
        self.use(appearance=keep_appearance, motion=True)
        velocity, target, noisy, scale = self.flow_step(latents, text, generator)
        if self.debiasing:
            terms["motion"] = motiondirector_temporal_loss(velocity, target, anchor)
        else:
            denoised = slice(self.given_frames, None)
            terms["flow"] = diffusion_mse(velocity[:, :, denoised], target[:, :, denoised])
        self.use(appearance=True, motion=True)
        sma = []
        if self.sma is not None:
            predicted = self.with_first_frame(noisy - scale * velocity)  # x0_hat = x_t - s v_hat
            frames, predicted_frames = self.sma_frames(latents), self.sma_frames(predicted)
            # the signal's share of x_t, (1 - s)^2, as abar_t in a noise schedule
            sma = [self.weighted_sma(frames, predicted_frames, lambda: (1 - scale.flatten()) ** 2)]
        return with_sma(terms, sma, self.sma_share)

    def loss_groups(self, terms: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, list[torch.nn.Parameter]]]:
        if not self.debiasing:
            return super().loss_groups(terms)
        motion = terms["motion"] + terms["sma"] if "sma" in terms else terms["motion"]
        groups = [(terms["appearance"], self.adapter_parameters("appearance"))] if "appearance" in terms else []
        return [*groups, (motion, self.adapter_parameters("motion"))]

    def prepare_generation(self) -> None:
        self.use(appearance=False, motion=True)

    def scheduler(self):
        """`generate.sampler` with the flow shift of `motionlora.sample_shift`."""
        return make_scheduler(self.config.generate.sampler, self.model.scheduler.config, self.options.sample_shift)

    def sample_from(self, start: torch.Tensor, target: str, phase: str = "sample") -> torch.Tensor:
        """The base sampling, given `target`'s image on an image-to-video model; frame 0 then the image's latent."""
        with self.conditioned_on(self.target_condition(target)):
            return self.with_first_frame(super().sample_from(start, target, phase))

    @torch.no_grad()
    def generate(self, reference_latents: torch.Tensor, target: str, seed: int) -> torch.Tensor:
        """WanPipeline's sampling (WanImageToVideoPipeline's from an image) from fresh noise shaped like the
        reference latents (float32 latents, the transformer in its dtype), the motion LoRA on; the reference itself
        is not used."""
        self.prepare_generation()
        return self.sample_from(self.fresh_noise(reference_latents.to(self.model.device, torch.float32), seed), target)
