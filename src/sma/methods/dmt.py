"""DMT: zero-shot motion transfer by steering the sampled latent with UNet space-time features.

Diffusion Motion Transfer (Yatim et al.) trains nothing. While sampling, during the first
steps, the latent being generated is optimized with Adam so that the features of chosen UNet
layers, under the target prompt, move from frame to frame like those of the reference's DDIM
inversion at the same timestep under the source prompt. SMA adds its global and local terms
on the frame residuals of the same (un-averaged) feature maps (DESIGN.md §2).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from sma.backbones.text_to_video import TextToVideoModel
from sma.config import TransferConfig
from sma.methods.base import MotionMethod
from sma.objectives import dmt_feature_loss
from sma.sampling import ddim_inversion, guided, low_frequency_prior, make_scheduler
from sma.spectral import SpectralMotionAlignment


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


class DMT(MotionMethod):
    """Diffusion Motion Transfer: guidance of the sampled latent, no trained parameters.

    SMA in feature space uses `dmt.sma_global_weight` and `dmt.sma_local_weight` and the
    other `sma` options, on features divided by the RMS of the reference's features, so
    that the weights mean the same at any layer, timestep or model.
    """

    name = "dmt"
    trains = False

    def __init__(self, model: TextToVideoModel, config: TransferConfig) -> None:
        super().__init__(model, config)
        if self.sma is not None:
            options = dataclasses.asdict(config.sma)
            del options["enabled"]
            options.update(global_weight=config.dmt.sma_global_weight, local_weight=config.dmt.sma_local_weight)
            self.sma = SpectralMotionAlignment(**options)

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        return {}

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
            start = low_frequency_prior(latent, noise.to(model.dtype), self.config.dmt.low_pass_factor)
            return self.sample(start, reference, source, target, generator)

    @contextmanager
    def reference_store(self) -> Iterator[ReferenceLatents]:
        """In memory, or (dmt.keep_on_disk) in a temporary folder removed when generation ends."""
        if not self.config.dmt.keep_on_disk:
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
        model, settings, options = self.model, self.config.generate, self.config.dmt
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
            for iteration in range(self.config.dmt.iterations):
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
        features = self.model.features(latents, t, text, self.config.dmt.layers)
        return {name: value.unflatten(0, (batch, frames)).transpose(1, 2) for name, value in features.items()}

    def feature_loss(
        self, reference: dict[str, torch.Tensor], output: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """DMT's space-time loss summed over layers (+ SMA on the feature maps); "loss" is the total."""
        terms = {"dmt": sum(dmt_feature_loss(reference[name], output[name]) for name in reference)}
        if self.sma is not None:
            layers = [self.sma.terms(*rms_scaled(reference[name], output[name])) for name in reference]
            terms["sma"] = sum(layer.total for layer in layers)
            for term in ("global_motion", "local_amplitude", "local_phase"):
                if getattr(layers[0], term) is not None:
                    terms[f"sma_{term}"] = sum(getattr(layer, term) for layer in layers).detach()
        terms["loss"] = sum(value for name, value in terms.items() if not name.startswith("sma_"))
        return terms


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
