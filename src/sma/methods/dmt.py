"""DMT: zero-shot motion transfer by steering the sampled latent with UNet space-time features.

Diffusion Motion Transfer (Yatim et al.) trains nothing. While sampling, during the first
steps, the latent being generated is optimized with Adam so that three features of the
UNet's `up_blocks.1`, under the target prompt, move from frame to frame like those of the
reference's DDIM inversion at the same timestep under the source prompt. SMA adds its global
and local terms on the frame residuals of the same (un-averaged) feature maps. What follows
the official code and where it differs: docs/methods.md.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from diffusers import DDIMInverseScheduler
from safetensors.torch import load_file, save_file

from sma.backbones.text_to_video import TextToVideoModel
from sma.config import PRECISIONS, TransferConfig, precision_dtype
from sma.errors import SmaError
from sma.memory_budget import checkpoint_within_budget, state_kept
from sma.methods.base import ZeroShotMethod
from sma.methods.options import OFFICIAL_LAYERS
from sma.objectives import dmt_feature_loss, with_sma
from sma.progress import track
from sma.sampling import ddim_inversion, gaussian_like, guided, low_frequency_prior, make_scheduler


class ReferenceLatents:
    """The inverted reference latent at every sampling timestep, in memory or in a folder of safetensors."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.latents: dict[int, torch.Tensor] = {}
        self.top = 0  # the last (noisiest) timestep of the inversion, and its latent
        self.noisiest: torch.Tensor | None = None

    def keep(self, timestep: int, latent: torch.Tensor) -> None:
        latent = latent.contiguous()  # the layout a file gives back, so both stores give bit-identical results
        if self.folder is None:
            self.latents[timestep] = latent
        else:
            save_file({"latent": latent.cpu()}, self.folder / f"{timestep:04d}.safetensors")

    def get(self, timestep: int, device: torch.device) -> torch.Tensor:
        if self.folder is None:
            return self.latents[timestep]
        return load_file(self.folder / f"{timestep:04d}.safetensors", device=str(device))["latent"]


class DMT(ZeroShotMethod):
    """Diffusion Motion Transfer: guidance of the sampled latent, no trained parameters.

    Latents stay in float32; every UNet pass runs under `dmt.precision`'s autocast. SMA in
    feature space uses `dmt.sma_global_weight` and `dmt.sma_local_weight` and the other `sma`
    options, on features divided by the RMS of the reference's features, so that the weights
    mean the same at any layer, timestep or model.
    """

    name = "dmt"
    sample_dtype = torch.float32  # every UNet pass casts to the model's dtype under `dmt.precision`'s autocast

    @classmethod
    def validate(cls, config: TransferConfig) -> None:
        options, generate = config.options, config.generate
        if generate.sampler != "ddim":
            raise SmaError(f"dmt samples with ddim: set generate.sampler to ddim (now {generate.sampler})")
        if generate.steps < 1 or generate.inversion_steps < 1:
            raise SmaError("generate.steps and generate.inversion_steps must be >= 1")
        if not options.layers:
            raise SmaError(f"dmt.layers must name at least one UNet module (DMT uses {', '.join(OFFICIAL_LAYERS)})")
        if not 0.0 <= options.guidance_fraction <= 1.0:
            raise SmaError(f"dmt.guidance_fraction must be in [0, 1], got {options.guidance_fraction}")
        if options.iterations < 0 or options.low_pass_factor < 1:
            raise SmaError("dmt.iterations must be >= 0 and dmt.low_pass_factor >= 1")
        if options.gradient_checkpointing not in (True, False, "budget"):
            raise SmaError(
                f"dmt.gradient_checkpointing must be true, false or budget, got {options.gradient_checkpointing!r}"
            )
        if options.memory_budget_gb is not None and options.memory_budget_gb <= 0:
            raise SmaError(f"dmt.memory_budget_gb must be above 0, got {options.memory_budget_gb}")
        if generate.compile:
            raise SmaError(
                "dmt's guidance reads UNet features through hooks and stops the UNet early, untested with compiled "
                "blocks: unset `generate.compile`"
            )
        if options.precision not in PRECISIONS:
            raise SmaError(f"dmt.precision must be one of {', '.join(PRECISIONS)}, got {options.precision!r}")

    def __init__(self, model: TextToVideoModel, config: TransferConfig) -> None:
        super().__init__(model, config)
        options = config.options
        self.sma = config.sma.build(global_weight=options.sma_global_weight, local_weight=options.sma_local_weight)
        missing = sorted(set(options.layers) - dict(model.unet.named_modules()).keys())
        if missing:
            raise SmaError(f"dmt.layers: the UNet has no module named {', '.join(missing)}")
        self.check_timesteps()
        self.budgeted = options.gradient_checkpointing == "budget" or options.memory_budget_gb is not None
        if options.gradient_checkpointing is True and not self.budgeted:
            model.enable_gradient_checkpointing()
        self._inversion: tuple[torch.Tensor, ReferenceLatents] | None = None

    def check_timesteps(self) -> None:
        """The inversion must pass through every sampling timestep, where guidance reads it."""
        settings, scheduler_config = self.config.generate, self.model.scheduler.config
        if settings.inversion_steps > scheduler_config.num_train_timesteps:
            raise SmaError(
                f"generate.inversion_steps ({settings.inversion_steps}) must be at most the model's "
                f"{scheduler_config.num_train_timesteps} training timesteps"
            )
        inversion = DDIMInverseScheduler.from_config(scheduler_config)
        inversion.set_timesteps(settings.inversion_steps)
        missing = sorted(set(self.sampler().timesteps.tolist()) - set(inversion.timesteps.tolist()))
        if missing:
            raise SmaError(
                f"the {settings.inversion_steps}-step inversion (generate.inversion_steps) misses timesteps "
                f"{missing[:3]}{'...' if len(missing) > 3 else ''} of the {settings.steps}-step sampling "
                "(generate.steps): use inversion steps whose timesteps include the sampling ones (DMT: 999)"
            )

    def sampler(self, device: torch.device | None = None):
        """A DDIM scheduler with the model's noise schedule, set to `generate.steps`."""
        scheduler = make_scheduler("ddim", self.model.scheduler.config)
        scheduler.set_timesteps(self.config.generate.steps, device=device)
        return scheduler

    @property
    def compute_dtype(self) -> torch.dtype:
        """`dmt.precision`, except fp16 off CUDA (CPU autocast in fp16 is slow or missing): fp32 there."""
        if self.options.precision == "fp16" and self.model.device.type != "cuda":
            return torch.float32
        return precision_dtype(self.options.precision)

    def autocast(self) -> AbstractContextManager:
        """Autocast to `compute_dtype`; nothing in fp32 (the weights' dtype, `generate.precision`, then rules)."""
        if self.compute_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.model.device.type, dtype=self.compute_dtype)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The UNet on float32 latents, under the autocast of `dmt.precision`; float32 output."""
        with self.autocast():
            return self.model.predict(latents.to(self.model.dtype), timesteps, text).float()

    @torch.no_grad()
    def generate(self, reference_latents: torch.Tensor, target: str, seed: int) -> torch.Tensor:
        """Invert the reference with the source prompt, start from its re-noised low frequencies, guide and sample."""
        model = self.model
        self.guidance_log = []
        clean = reference_latents.to(model.device, torch.float32)
        source = model.encode_prompts([self.config.prompt])
        generator = torch.Generator(device=clean.device).manual_seed(seed)
        scheduler = self.sampler(clean.device)
        reference = self.inversion(clean, source, set(scheduler.timesteps.tolist()))
        noise = gaussian_like(clean, generator)
        first = scheduler.timesteps[0]
        start = start_latent(
            clean, reference.noisiest, reference.top, first, model.scheduler, noise, self.options.low_pass_factor
        )
        return self.sample(start, scheduler, reference, source, target, generator)

    def inversion(self, clean: torch.Tensor, source: torch.Tensor, wanted: set[int]) -> ReferenceLatents:
        """The reference's inversion (its latents at the `wanted` timesteps and its noisiest one), computed once
        per reference: every target of a run reuses it (at 999 steps it is most of a DMT run's cost)."""
        cached = self._inversion
        if cached is not None and torch.equal(cached[0], clean):
            return cached[1]
        folder = Path(tempfile.mkdtemp(prefix="sma-dmt-")) if self.options.keep_on_disk else None
        reference = ReferenceLatents(folder)
        if folder is not None:  # removed with the store
            weakref.finalize(reference, shutil.rmtree, folder, ignore_errors=True)
        denoise = guided(self.predict, source, source, 1.0)
        inversion = unclipped_inversion(
            denoise, clean, self.model.scheduler.config, self.config.generate.inversion_steps
        )
        for timestep, latent in inversion:
            if timestep in wanted:
                reference.keep(timestep, latent)
        reference.top, reference.noisiest = timestep, latent
        self._inversion = (clean, reference)
        return reference

    def sample(
        self,
        latents: torch.Tensor,
        scheduler,
        reference: ReferenceLatents,
        source: torch.Tensor,
        target: str,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """DDIM with classifier-free guidance; the first steps guided, each step but the last restarted if asked."""
        model, settings, options = self.model, self.config.generate, self.options
        condition, negative = model.encode_prompts([target]), model.encode_prompts([settings.negative_prompt])
        denoise = guided(self.predict, condition, negative, settings.guidance_scale)
        timesteps = scheduler.timesteps
        guided_steps = round(options.guidance_fraction * settings.steps)
        learning_rates = torch.linspace(options.lr_start, options.lr_end, guided_steps).tolist()
        for index, t in enumerate(track(timesteps, "dmt", len(timesteps))):
            if index < guided_steps:
                reference_latent = reference.get(int(t), latents.device)
                latents = self.guide(latents, t, reference_latent, source, condition, learning_rates[index])
            latents = scheduler.step(denoise(latents, t), t, latents).prev_sample
            if options.restart and index + 1 < len(timesteps):
                latents = renoise(latents, scheduler, timesteps[index + 1], generator)
                latents = scheduler.step(denoise(latents, t), t, latents).prev_sample
        return latents

    def guide(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        reference_latent: torch.Tensor,
        source: torch.Tensor,
        condition: torch.Tensor,
        learning_rate: float,
    ) -> torch.Tensor:
        """A fresh Adam (and, in fp16, a fresh gradient scaler) on the float32 latent against the feature loss."""
        with torch.no_grad():
            reference = self.feature_videos(reference_latent, t, source)
        optimized = latents.detach().to(torch.float32, copy=True).requires_grad_(True)
        if self.budgeted and self.checkpointing_plan is None:
            self.plan_checkpointing(reference, t, condition, optimized)
        optimizer = torch.optim.Adam([optimized], lr=learning_rate)
        scaler = torch.amp.GradScaler(self.model.device.type, enabled=self.compute_dtype == torch.float16)
        with torch.enable_grad():
            for iteration in range(self.options.iterations):
                terms = self.feature_loss(reference, self.feature_videos(optimized, t, condition))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(terms["loss"]).backward()
                scaler.step(optimizer)  # skipped when the scaled gradient overflowed; the scale then halves
                scaler.update()
                record = {name: round(value.item(), 6) for name, value in terms.items()}
                if scaler.is_enabled():
                    record["grad_scale"] = scaler.get_scale()
                self.guidance_log.append({"timestep": int(t), "iteration": iteration, **record})
                del terms  # the graph of this iteration goes before the next forward
        return optimized.detach()

    def plan_checkpointing(
        self, reference: dict[str, torch.Tensor], t: torch.Tensor, condition: torch.Tensor, optimized: torch.Tensor
    ) -> None:
        """Recompute the fewest UNet layers whose estimated peak fits `dmt.memory_budget_gb`, from a measuring
        forward of the guidance's loss (`sma.memory_budget`); nothing without a budget (on the CPU). Planned once,
        at the first guided step: every later one has the same shapes."""

        def forward() -> None:
            with state_kept(self, "sma_share"):
                self.feature_loss(reference, self.feature_videos(optimized, t, condition))

        budget_gb = self.options.memory_budget_gb  # Adam's moments and the gradient are the latent's
        plan = checkpoint_within_budget(self.model, budget_gb, forward, [optimized], "adamw", "dmt.memory_budget_gb")
        self.budgeted = plan is not None
        self.checkpointing_plan = plan

    def feature_videos(self, latents: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of `dmt.layers` as videos (b, c, f, h, w); the UNet stops after the last of them."""
        batch, _, frames = latents.shape[:3]
        with self.autocast():
            features = self.model.features(latents.to(self.model.dtype), t, text, self.options.layers)
        return {name: value.unflatten(0, (batch, frames)).transpose(1, 2) for name, value in features.items()}

    def feature_loss(
        self, reference: dict[str, torch.Tensor], output: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """DMT's space-time loss summed over layers (+ SMA on each feature map), in float32; "loss" is the total."""
        terms = {"dmt": sum(dmt_feature_loss(reference[name], output[name]) for name in reference)}
        if self.sma is None:
            return with_sma(terms)
        sma = [self.sma.terms(*rms_scaled(reference[name], output[name])) for name in reference]
        return with_sma(terms, sma, self.sma_share)


def rms_scaled(reference: torch.Tensor, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature videos divided by the reference's root mean square (a constant)."""
    scale = reference.detach().float().square().mean().sqrt().clamp_min(1e-12)
    return reference.detach().float() / scale, output.float() / scale


def unclipped_inversion(
    denoise, clean: torch.Tensor, scheduler_config, steps: int, progress: bool = True
) -> Iterator[tuple[int, torch.Tensor]]:
    """`ddim_inversion` as DMT's preprocessing runs it: the x0 estimate is never clipped, whatever
    `clip_sample` the model's scheduler config says (diffusers' inverse scheduler would clip it)."""
    config = DDIMInverseScheduler.from_config(scheduler_config, clip_sample=False).config
    return ddim_inversion(denoise, clean, config, steps, progress)


def start_latent(
    clean: torch.Tensor,
    noisiest: torch.Tensor,
    t_noisiest: int,
    t_start: torch.Tensor,
    scheduler,
    noise: torch.Tensor,
    low_pass_factor: int,
) -> torch.Tensor:
    """DMT's first latent: the noise the last inverted latent implies, put on the clean reference at the
    first sampling timestep; its low spatial frequencies, plus the high ones of `noise`.
    """
    alpha = scheduler.alphas_cumprod[t_noisiest].item()
    implied = (noisiest - alpha**0.5 * clean) / (1 - alpha) ** 0.5
    renoised = scheduler.add_noise(clean, implied, t_start.reshape(1))
    return low_frequency_prior(renoised, noise, low_pass_factor)


def renoise(latents: torch.Tensor, scheduler, t_next: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Restart: noise a latent DDIM just stepped to `t_next` back up one sampling step, as DMT's code does:
    x <- sqrt(1 - b) x + sqrt(b) z for b = betas[t_next], ..., betas[t_next + T / steps - 1], in one draw.
    """
    jump = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    start = int(t_next)
    kept = (1 - scheduler.betas[start : start + jump].double()).prod().item()
    return kept**0.5 * latents + (1 - kept) ** 0.5 * gaussian_like(latents, generator)
