"""Motion vectors of a video and the model's denoised estimate of the clean video."""

from __future__ import annotations

import torch

PARAMETERIZATIONS = ("epsilon", "v_prediction", "sample", "flow_matching")


def frame_residuals(video: torch.Tensor, absolute: bool = False, dim: int = 2) -> torch.Tensor:
    """dv[n] = v[n+1] - v[n] along the frame axis; |dv| when `absolute` (the official SMA code)."""
    frames = video.shape[dim]
    residuals = video.narrow(dim, 1, frames - 1) - video.narrow(dim, 0, frames - 1)
    return residuals.abs() if absolute else residuals


def parameterization(scheduler) -> str:
    """What the model predicts, read from a diffusers scheduler."""
    if "FlowMatch" in type(scheduler).__name__:
        return "flow_matching"
    if not hasattr(scheduler, "alphas_cumprod"):
        raise ValueError(
            f"{type(scheduler).__name__} has no alphas_cumprod and is not a flow-matching scheduler: "
            "cannot derive the denoised estimate from it"
        )
    kind = scheduler.config.prediction_type
    if kind not in PARAMETERIZATIONS:
        raise ValueError(f"unsupported prediction_type {kind!r}: expected one of {', '.join(PARAMETERIZATIONS[:3])}")
    return kind


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (like.ndim - 1)))


def predict_x0(
    model_output: torch.Tensor, sample: torch.Tensor, timesteps: torch.Tensor | int, scheduler
) -> torch.Tensor:
    """Tweedie's denoised estimate of x0 from one model output, in float32 (or float64).

    epsilon:       x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    v_prediction:  x0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v
    sample:        x0 = model output
    flow matching: x0 = x_t - s u, with x_t = (1 - s) x0 + s eps, u = eps - x0, s = t / T
    No clamping, as in the official SMA code. `timesteps` is a scalar or one per sample.
    """
    kind = parameterization(scheduler)
    dtype = torch.float64 if sample.dtype == torch.float64 else torch.float32
    if model_output.shape[1] == 2 * sample.shape[1]:
        # learned-variance models (e.g. DeepFloyd IF, Show-1) append the variance channels
        model_output = model_output[:, : sample.shape[1]]
    model_output = model_output.to(dtype)
    sample = sample.to(dtype)
    timesteps = torch.as_tensor(timesteps, device=sample.device)
    if kind == "sample":
        return model_output
    if kind == "flow_matching":
        sigma = _per_sample(timesteps.to(dtype) / scheduler.config.num_train_timesteps, sample)
        return sample - sigma * model_output
    alpha_bar = _per_sample(scheduler.alphas_cumprod.to(sample.device, dtype)[timesteps.long()], sample)
    if kind == "epsilon":
        return (sample - (1 - alpha_bar).sqrt() * model_output) / alpha_bar.sqrt()
    return alpha_bar.sqrt() * sample - (1 - alpha_bar).sqrt() * model_output
