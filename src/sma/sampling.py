"""Sampling loops over diffusers schedulers, DDIM inversion, and initial-noise priors.

A denoiser is any function (latents, timestep) -> model output; classifier-free guidance
wraps the model into one. Each loop is one short function, k-diffusion style.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DPMSolverMultistepScheduler
from tqdm.auto import tqdm

from sma.errors import SmaError

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

SAMPLERS = {"ddim": DDIMScheduler, "dpmsolver++": DPMSolverMultistepScheduler}


def make_scheduler(name: str, config) -> DDIMScheduler | DPMSolverMultistepScheduler:
    """A fresh sampling scheduler of the named kind with the model's noise schedule."""
    if name not in SAMPLERS:
        raise SmaError(f"unknown sampler {name!r}: expected one of {', '.join(SAMPLERS)}")
    options = {"algorithm_type": "dpmsolver++"} if name == "dpmsolver++" else {}
    return SAMPLERS[name].from_config(config, **options)


def guided(predict: Predictor, condition: torch.Tensor, unconditional: torch.Tensor, scale: float) -> Denoiser:
    """Classifier-free guidance: uncond + scale * (cond - uncond), both in one batched call.

    `unconditional` is the embedding of the negative prompt (the empty prompt by default).
    """
    if scale == 1.0:
        return lambda latents, t: predict(latents, t, condition)
    embeddings = torch.cat([unconditional, condition])

    def denoise(latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        output_uncond, output_cond = predict(torch.cat([latents, latents]), t, embeddings).chunk(2)
        return output_uncond + scale * (output_cond - output_uncond)

    return denoise


@torch.no_grad()
def sample(
    denoise: Denoiser, latents: torch.Tensor, scheduler, steps: int, progress: bool = True, description: str = "sample"
) -> torch.Tensor:
    """Run the scheduler from `latents` (noise at its first timestep) to a clean latent."""
    scheduler.set_timesteps(steps, device=latents.device)
    for t in tqdm(scheduler.timesteps, desc=description, disable=not progress, leave=False):
        model_input = scheduler.scale_model_input(latents, t)
        latents = scheduler.step(denoise(model_input, t), t, latents).prev_sample
    return latents


@torch.no_grad()
def ddim_invert(
    denoise: Denoiser, latents: torch.Tensor, config, steps: int, progress: bool = True
) -> list[torch.Tensor]:
    """Deterministic DDIM run backwards: clean latents -> the noise that DDIM maps back to them.

    Returns the latent at every timestep of the `steps`-step schedule, from the least noisy
    to the noisiest; the last one starts sampling. `config` is the model's scheduler config.
    """
    scheduler = DDIMInverseScheduler.from_config(config)
    scheduler.set_timesteps(steps, device=latents.device)
    trajectory = []
    for t in tqdm(scheduler.timesteps, desc="invert", disable=not progress, leave=False):
        latents = scheduler.step(denoise(latents, t), t, latents).prev_sample
        trajectory.append(latents)
    return trajectory


def noise_prior(inverted: torch.Tensor, noise: torch.Tensor, strength: float) -> torch.Tensor:
    """MotionDirector's initial latent: sqrt(p) z_inv + sqrt(1 - p) eps, p in [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise SmaError(f"noise prior strength must be in [0, 1], got {strength}")
    return strength**0.5 * inverted + (1 - strength) ** 0.5 * noise
