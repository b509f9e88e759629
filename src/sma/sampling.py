"""Sampling loops over diffusers schedulers, DDIM inversion, and initial-noise priors.

A denoiser is any function (latents, timestep) -> model output; classifier-free guidance
wraps the model into one. Each loop is one short function, k-diffusion style.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    DDIMInverseScheduler,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from sma.errors import SmaError
from sma.progress import track

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

SAMPLERS = {
    "ddim": DDIMScheduler,
    "dpmsolver++": DPMSolverMultistepScheduler,
    "unipc": UniPCMultistepScheduler,
    "flow-euler": FlowMatchEulerDiscreteScheduler,
}
DIFFUSION_SAMPLERS = ("ddim", "dpmsolver++")  # for models trained on a noise schedule (betas)
FLOW_SAMPLERS = ("unipc", "dpmsolver++", "flow-euler")  # for flow-matching models (Wan)


def is_flow_matching(config) -> bool:
    """Whether a scheduler config describes a flow-matching model: UniPC / DPM-Solver predicting flow, or a
    scheduler without a beta schedule (FlowMatchEulerDiscreteScheduler)."""
    return config.get("prediction_type") == "flow_prediction" or "beta_start" not in config


def shift_of(config, flow_shift: float | None) -> float:
    """The shift of a flow model's sigmas: `flow_shift`, or the model scheduler's own when None."""
    return flow_shift if flow_shift is not None else config.get("flow_shift", config.get("shift", 1.0))


def make_scheduler(name: str, config, flow_shift: float | None = None):
    """A fresh sampling scheduler of the named kind with the model's noise schedule.

    Flow-matching models get flow sigmas shifted by `flow_shift` (the model's own shift when None), as
    WanPipeline's UniPC does.
    """
    flow = is_flow_matching(config)
    allowed = FLOW_SAMPLERS if flow else DIFFUSION_SAMPLERS
    if name not in allowed:
        kind = "flow-matching" if flow else "diffusion"
        raise SmaError(f"sampler {name!r} does not sample this {kind} model: expected one of {', '.join(allowed)}")
    if not flow:
        options = {"algorithm_type": "dpmsolver++"} if name == "dpmsolver++" else {}
        return SAMPLERS[name].from_config(config, **options)
    shift = shift_of(config, flow_shift)
    if name == "flow-euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=config["num_train_timesteps"], shift=shift)
    options = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": shift}
    if name == "dpmsolver++":
        options["algorithm_type"] = "dpmsolver++"
    return SAMPLERS[name].from_config(config, **options)


def guided(
    predict: Predictor,
    condition: torch.Tensor,
    unconditional: torch.Tensor,
    scale: float | Callable[[torch.Tensor], float],
) -> Denoiser:
    """Classifier-free guidance: uncond + scale * (cond - uncond), both in one batched call.

    `unconditional` is the embedding of the negative prompt (the empty prompt by default); `scale` may be a function
    of the timestep (Wan 2.2 A14B guides each expert's steps with its own scale).
    """
    if scale == 1.0:
        return lambda latents, t: predict(latents, t, condition)
    embeddings = torch.cat([unconditional, condition])
    scale_at = scale if callable(scale) else lambda _t: scale

    def denoise(latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        output_uncond, output_cond = predict(torch.cat([latents, latents]), t, embeddings).chunk(2)
        return output_uncond + scale_at(t) * (output_cond - output_uncond)

    return denoise


@torch.no_grad()
def sample(
    denoise: Denoiser, latents: torch.Tensor, scheduler, steps: int, progress: bool = True, description: str = "sample"
) -> torch.Tensor:
    """Run the scheduler from `latents` (noise at its first timestep) to a clean latent."""
    scheduler.set_timesteps(steps, device=latents.device)
    if hasattr(scheduler, "set_begin_index"):  # steps by position, not by looking the timestep up (as diffusers does)
        scheduler.set_begin_index(0)
    scale = getattr(scheduler, "scale_model_input", lambda sample, _t: sample)  # flow matching scales nothing
    for t in track(scheduler.timesteps, description, len(scheduler.timesteps), show=progress):
        model_input = scale(latents, t)
        latents = scheduler.step(denoise(model_input, t), t, latents).prev_sample
    return latents


@torch.no_grad()
def ddim_inversion(
    denoise: Denoiser, latents: torch.Tensor, config, steps: int, progress: bool = True
) -> Iterator[tuple[int, torch.Tensor]]:
    """Deterministic DDIM run backwards, one (timestep, latent at that timestep) at a time.

    Goes from the least noisy timestep of the `steps`-step schedule to the noisiest; the
    timesteps are those a DDIM sampler with the same `config` (the model's scheduler
    config) and `steps` visits, in reverse. A generator, so callers keep only what they need.
    """
    scheduler = DDIMInverseScheduler.from_config(config)
    scheduler.set_timesteps(steps, device=latents.device)
    for t in track(scheduler.timesteps, "invert", len(scheduler.timesteps), show=progress):
        latents = scheduler.step(denoise(latents, t), t, latents).prev_sample
        yield int(t), latents


def ddim_invert(
    denoise: Denoiser, latents: torch.Tensor, config, steps: int, progress: bool = True
) -> list[torch.Tensor]:
    """Clean latents -> the noise that DDIM maps back to them.

    Returns the latent at every timestep of the `steps`-step schedule, from the least noisy
    to the noisiest; the last one starts sampling. `config` is the model's scheduler config.
    """
    return [latent for _, latent in ddim_inversion(denoise, latents, config, steps, progress)]


def gaussian_like(latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like `latents`, drawn on the generator's device (a CUDA generator cannot
    draw on the CPU, nor a CPU one on CUDA), then moved to the latents' device and dtype."""
    noise = torch.randn(latents.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return noise.to(latents.device, latents.dtype)


def noise_prior(inverted: torch.Tensor, noise: torch.Tensor, strength: float) -> torch.Tensor:
    """MotionDirector's initial latent: sqrt(p) z_inv + sqrt(1 - p) eps, p in [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise SmaError(f"noise prior strength must be in [0, 1], got {strength}")
    return strength**0.5 * inverted + (1 - strength) ** 0.5 * noise


def low_frequency_prior(inverted: torch.Tensor, noise: torch.Tensor, factor: int) -> torch.Tensor:
    """DMT's initial latent: the low spatial frequencies of the inverted latent, the high ones of noise.

    The low-pass filter shrinks each frame `factor` times (bilinear, antialiased) and
    enlarges it back; factor 1 keeps the inverted latent whole.
    """
    if factor < 1:
        raise SmaError(f"the low-pass factor must be >= 1, got {factor}")
    return low_pass(inverted, factor) + (noise - low_pass(noise, factor))


def low_pass(video: torch.Tensor, factor: int) -> torch.Tensor:
    """Per-frame spatial low-pass of (b, c, f, h, w) latents by shrinking and enlarging back."""
    if factor == 1:
        return video
    batch, _, frames, height, width = video.shape
    frames_first = video.transpose(1, 2).flatten(0, 1)
    options = {"mode": "bilinear", "align_corners": True, "antialias": True}
    small = F.interpolate(frames_first, size=(height // factor, width // factor), **options)
    smooth = F.interpolate(small, size=(height, width), **options)
    return smooth.unflatten(0, (batch, frames)).transpose(1, 2)


def pinned_flow_timesteps(steps: int, train_timesteps: int, shift: float) -> torch.Tensor:
    """The flow timesteps FlowMotion's run.py samples at: its Hub UniPC scheduler's as its pinned diffusers (0.35.1,
    scheduling_unipc_multistep.py:388-415) computes them: `steps` sigmas from 1 - 1/T down, shifted, times T, cut to
    integers. The installed diffusers starts at sigma 1 and ends higher (50 steps: 40 timesteps differ, by up to 3)."""
    sigmas = 1.0 - np.linspace(1, 1 / train_timesteps, steps + 1)
    sigmas = np.flip(shift * sigmas / (1 + (shift - 1) * sigmas))[:-1]
    return torch.from_numpy(sigmas * train_timesteps).to(torch.int64)


def estimate_limit(config) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """What a DDIM step under this scheduler config does to its denoised estimate (Show-1 and DeepFloyd IF ask for
    it): dynamic thresholding (`thresholding`; each video clamped to its `dynamic_thresholding_ratio` quantile of
    |x0|, kept within [1, `sample_max_value`], and divided by it), else a clamp to `clip_sample_range` (`clip_sample`);
    None when neither."""
    if config.get("thresholding"):
        ratio, ceiling = config["dynamic_thresholding_ratio"], config["sample_max_value"]

        def threshold(estimate: torch.Tensor) -> torch.Tensor:
            flat = estimate.flatten(1)
            limit = torch.quantile(flat.abs(), ratio, dim=1).clamp(1, ceiling)[:, None]
            return (flat.clamp(-limit, limit) / limit).view_as(estimate)

        return threshold
    if config.get("clip_sample"):
        bound = config["clip_sample_range"]
        return lambda estimate: estimate.clamp(-bound, bound)
    return None


class EulerSchedule:
    """Euler steps of the probability-flow ODE, on the timesteps of a model's own scheduler.

    In the coordinates y = x / scale, every model moves along sigma with a velocity u, and its denoised
    estimate is x0 = y - sigma u: flow matching (Wan) with scale 1, sigma = t / T and u = eps - x0 (the model's
    output); a noise schedule with scale = sqrt(abar_t), sigma = sqrt(1 - abar_t) / sqrt(abar_t) and u = eps
    (there an Euler step is a DDIM step, and thresholds or clips its estimate where the model's DDIM would:
    `estimate_limit`). One loop and one regulation of the velocity then serve both kinds. Flow models step on the
    timesteps FlowMotion's pinned diffusers gives them (`pinned_flow_timesteps`).
    """

    def __init__(self, config, steps: int, device: torch.device | str, flow_shift: float | None = None) -> None:
        self.flow = is_flow_matching(config)
        self.prediction = "flow" if self.flow else config.get("prediction_type", "epsilon")
        if self.prediction not in ("flow", "epsilon", "v_prediction"):
            raise SmaError(f"Euler sampling takes flow, epsilon or v-prediction models, not {self.prediction!r}")
        self.limit = None
        if self.flow:  # the step ends at sigma 0, the clean video
            train_timesteps = config["num_train_timesteps"]
            self.timesteps = pinned_flow_timesteps(steps, train_timesteps, shift_of(config, flow_shift)).to(device)
            times = self.timesteps.double().cpu()
            sigmas = torch.cat([times / train_timesteps, torch.zeros(1, dtype=torch.float64)])
            scales = torch.ones_like(sigmas)
        else:  # the step ends where DDIM's last step does
            scheduler = make_scheduler("ddim", config)
            scheduler.set_timesteps(steps, device=device)
            self.timesteps = scheduler.timesteps
            alphas = scheduler.alphas_cumprod.double()
            final = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=torch.float64).reshape(1)
            abar = torch.cat([alphas[self.timesteps.long().cpu()], final])
            scales, sigmas = abar.sqrt(), ((1 - abar) / abar).sqrt()
            self.limit = estimate_limit(scheduler.config)
        self.sigmas, self.scales = sigmas.tolist(), scales.tolist()

    def noised(self, clean: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
        """The clean latents at step `index`'s noise level with this noise: (1 - s) x0 + s eps, or
        sqrt(abar) x0 + sqrt(1 - abar) eps."""
        sigma, scale = self.sigmas[index], self.scales[index]
        if self.flow:
            return (1 - sigma) * clean + sigma * noise
        return scale * (clean + sigma * noise)

    def velocity(self, output: torch.Tensor, latents: torch.Tensor, index: int) -> torch.Tensor:
        """The model's output as the velocity u of y: itself, or the noise a v-prediction implies."""
        if self.prediction != "v_prediction":
            return output
        scale = self.scales[index]
        return scale * output + scale * self.sigmas[index] * latents

    def estimate(self, latents: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        """The denoised estimate x0 = y - sigma u."""
        return latents / self.scales[index] - self.sigmas[index] * velocity

    def mean_velocity(self, latents: torch.Tensor, start: torch.Tensor, index: int) -> torch.Tensor:
        """The velocity of y from the first step's latents `start` to `latents` at step `index` (> 0)."""
        moved = latents / self.scales[index] - start / self.scales[0]
        return moved / (self.sigmas[index] - self.sigmas[0])

    def step(self, latents: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        """y' = y + (sigma' - sigma) u, back to latents at the next step (or the end); with a limit on the estimate,
        y' = limit(x0) + sigma' u, as DDIM steps."""
        if self.limit is None:
            after = latents / self.scales[index] + (self.sigmas[index + 1] - self.sigmas[index]) * velocity
        else:
            after = self.limit(self.estimate(latents, velocity, index)) + self.sigmas[index + 1] * velocity
        return self.scales[index + 1] * after
