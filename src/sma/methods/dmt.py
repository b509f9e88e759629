"""DMT: zero-shot motion transfer by steering the sampled latent with UNet space-time features.

Diffusion Motion Transfer (Yatim et al.) trains nothing. While sampling, during the first
steps, the latent being generated is optimized with Adam so that the features of chosen UNet
layers, under the target prompt, move from frame to frame like those of the reference's DDIM
inversion at the same timestep under the source prompt. SMA adds its global and local terms
on the frame residuals of the same (un-averaged) feature maps (docs/methods.md).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from sma.backbones.text_to_video import TextToVideoModel
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.methods.base import ZeroShotMethod
from sma.objectives import dmt_feature_loss, with_sma
from sma.sampling import ddim_inversion, guided, low_frequency_prior, make_scheduler


@dataclass
class DMTOptions:
    """DMT's zero-shot guidance; the SMA options other than its weights come from the `sma` section."""

    layers: list[str] = field(default_factory=lambda: ["up_blocks.1"])  # UNet modules whose outputs are compared
    guidance_fraction: float = 0.4  # guided share of the sampling steps, from the noisiest
    iterations: int = 10  # Adam iterations on the latent per guided step
    lr_start: float = 0.007  # Adam learning rate at the first guided step, linear to lr_end at the last
    lr_end: float = 0.004
    restart: bool = True  # after each step, noise back to its timestep and denoise it again
    low_pass_factor: int = 4  # initial latent: inverted latent shrunk this much per frame, plus the rest of noise
    keep_on_disk: bool = False  # inverted reference latents as safetensors files instead of in memory
    sma_global_weight: float = 0.4  # SMA in feature space, on features divided by the reference's RMS
    sma_local_weight: float = 0.2


class ReferenceLatents:
    """The inverted reference latent at every sampling timestep, in memory or in a folder of safetensors."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.latents: dict[int, torch.Tensor] = {}

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

    SMA in feature space uses `dmt.sma_global_weight` and `dmt.sma_local_weight` and the
    other `sma` options, on features divided by the RMS of the reference's features, so
    that the weights mean the same at any layer, timestep or model.
    """

    name = "dmt"
    Options = DMTOptions

    @classmethod
    def validate(cls, config: TransferConfig) -> None:
        options, generate = config.options, config.generate
        if generate.sampler != "ddim" or generate.inversion_steps != generate.steps:
            raise SmaError(
                "dmt samples with ddim over the timesteps of the inversion: set generate.sampler to ddim and "
                f"generate.inversion_steps equal to generate.steps (now {generate.sampler}, "
                f"{generate.inversion_steps} and {generate.steps})"
            )
        if not options.layers:
            raise SmaError("dmt.layers must name at least one UNet module (DMT uses up_blocks.1)")
        if not 0.0 <= options.guidance_fraction <= 1.0:
            raise SmaError(f"dmt.guidance_fraction must be in [0, 1], got {options.guidance_fraction}")
        if options.iterations < 0 or options.low_pass_factor < 1:
            raise SmaError("dmt.iterations must be >= 0 and dmt.low_pass_factor >= 1")

    def __init__(self, model: TextToVideoModel, config: TransferConfig) -> None:
        super().__init__(model, config)
        options = config.options
        self.sma = config.sma.build(global_weight=options.sma_global_weight, local_weight=options.sma_local_weight)

    @torch.no_grad()
    def generate(self, reference_latents: torch.Tensor, target: str, seed: int) -> torch.Tensor:
        """Invert the reference with the source prompt, start from its low frequencies, sample with guidance."""
        model, settings = self.model, self.config.generate
        self.guidance_log = []
        reference_latents = reference_latents.to(model.device, model.dtype)
        source = model.encode_prompts([self.config.prompt])
        generator = torch.Generator(device=reference_latents.device).manual_seed(seed)
        noise = torch.randn(reference_latents.shape, generator=generator, device=reference_latents.device)
        with self.reference_store() as reference:
            inversion = ddim_inversion(
                guided(model.predict, source, source, 1.0), reference_latents, model.scheduler.config, settings.steps
            )
            for timestep, latent in inversion:
                reference.keep(timestep, latent)
            start = low_frequency_prior(latent, noise.to(model.dtype), self.options.low_pass_factor)
            return self.sample(start, reference, source, target, generator)

    @contextmanager
    def reference_store(self) -> Iterator[ReferenceLatents]:
        """In memory, or (dmt.keep_on_disk) in a temporary folder removed when generation ends."""
        if not self.options.keep_on_disk:
            yield ReferenceLatents()
            return
        with tempfile.TemporaryDirectory(prefix="sma-dmt-") as folder:
            yield ReferenceLatents(Path(folder))

    def sample(
        self,
        latents: torch.Tensor,
        reference: ReferenceLatents,
        source: torch.Tensor,
        target: str,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """DDIM with classifier-free guidance; the first steps guided, each step restarted if asked."""
        model, settings, options = self.model, self.config.generate, self.options
        condition, negative = model.encode_prompts([target]), model.encode_prompts([settings.negative_prompt])
        denoise = guided(model.predict, condition, negative, settings.guidance_scale)
        scheduler = make_scheduler("ddim", model.scheduler.config)
        scheduler.set_timesteps(settings.steps, device=latents.device)
        guided_steps = round(options.guidance_fraction * settings.steps)
        learning_rates = torch.linspace(options.lr_start, options.lr_end, guided_steps).tolist()
        for index, t in enumerate(tqdm(scheduler.timesteps, desc="dmt", leave=False)):
            if index < guided_steps:
                reference_latent = reference.get(int(t), latents.device)
                latents = self.guide(latents, t, reference_latent, source, condition, learning_rates[index])
            latents = scheduler.step(denoise(latents, t), t, latents).prev_sample
            if options.restart and index + 1 < len(scheduler.timesteps):
                latents = renoise(latents, scheduler, t, generator)
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
        """Adam on the latent (in float32) against the feature loss; returns the moved latent."""
        with torch.no_grad():
            reference = self.feature_videos(reference_latent, t, source)
        optimized = latents.detach().to(torch.float32, copy=True).requires_grad_(True)
        optimizer = torch.optim.Adam([optimized], lr=learning_rate)
        with torch.enable_grad():
            for iteration in range(self.options.iterations):
                terms = self.feature_loss(reference, self.feature_videos(optimized.to(latents.dtype), t, condition))
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                record = {name: round(value.item(), 6) for name, value in terms.items()}
                self.guidance_log.append({"timestep": int(t), "iteration": iteration, **record})
                del terms  # the graph of this iteration goes before the next forward
        return optimized.detach().to(latents.dtype)

    def feature_videos(self, latents: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of `dmt.layers` as videos (b, c, f, h, w); the UNet stops after the last of them."""
        batch, _, frames = latents.shape[:3]
        features = self.model.features(latents, t, text, self.options.layers)
        return {name: value.unflatten(0, (batch, frames)).transpose(1, 2) for name, value in features.items()}

    def feature_loss(
        self, reference: dict[str, torch.Tensor], output: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """DMT's space-time loss summed over layers (+ SMA on the feature maps); "loss" is the total."""
        terms = {"dmt": sum(dmt_feature_loss(reference[name], output[name]) for name in reference)}
        if self.sma is None:
            return with_sma(terms)
        return with_sma(terms, [self.sma.terms(*rms_scaled(reference[name], output[name])) for name in reference])


def rms_scaled(reference: torch.Tensor, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature videos divided by the reference's root mean square (a constant)."""
    scale = reference.detach().float().square().mean().sqrt().clamp_min(1e-12)
    return reference.detach().float() / scale, output.float() / scale


def renoise(latents: torch.Tensor, scheduler, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Restart sampling: noise a latent DDIM just stepped from t back to t (a DDPM forward jump)."""
    previous = int(t) - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    kept = scheduler.alphas_cumprod[int(t)] / scheduler.alphas_cumprod[previous]
    noise = torch.randn(latents.shape, generator=generator, device=latents.device).to(latents.dtype)
    return kept.sqrt().item() * latents + (1 - kept).sqrt().item() * noise
