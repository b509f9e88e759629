"""Spectral Motion Alignment: the frequency-domain motion regularizer (docs/design.md §1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sma.motion import frame_residuals
from sma.spectral.fourier import half_spectrum_weights, spectra
from sma.spectral.wavelet import check_mode, filter_bank, max_levels, wavedec


@dataclass(frozen=True)
class SpectralMotionTerms:
    """The weighted total and each unweighted term; a term whose weight is 0 is None."""

    total: torch.Tensor
    global_motion: torch.Tensor | None
    local_amplitude: torch.Tensor | None
    local_phase: torch.Tensor | None

    def as_dict(self) -> dict[str, float]:
        """Plain floats of the computed terms, for progress bars and logs."""
        names = ("total", "global_motion", "local_amplitude", "local_phase")
        return {name: getattr(self, name).item() for name in names if getattr(self, name) is not None}


def global_motion_loss(
    target_residuals: torch.Tensor,
    predicted_residuals: torch.Tensor,
    wavelet: str = "haar",
    levels: int = 2,
    level_weights: Sequence[float] | None = None,
    mode: str = "zero",
    relative: bool = False,
) -> torch.Tensor:
    """w_0 mean|A_J - A_J'| + sum_j w_j mean|D_j - D_j'|, wavelets along the frame axis (2).

    The transform is linear, so the coefficients of the difference are the differences of
    the coefficients: one transform instead of two. `relative` divides by the same sum over the
    target's own coefficients (no gradient through it): a number that no longer grows with the
    coefficients' scale, which changes with the levels and the residuals' size.
    """
    weights = [1.0] * (levels + 1) if level_weights is None else list(level_weights)
    loss = _weighted_l1(wavedec(target_residuals - predicted_residuals, wavelet, levels, mode, dim=2), weights)
    if not relative:
        return loss
    with torch.no_grad():
        scale = _weighted_l1(wavedec(target_residuals, wavelet, levels, mode, dim=2), weights)
    return loss / scale.clamp_min(torch.finfo(scale.dtype).tiny)


def _weighted_l1(coefficients: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """w_0 mean|A_J| + sum_j w_j mean|D_j| of wavedec's output (details coarsest first; weights[j] for D_j,
    j = 1 finest)."""
    approximation, *details = coefficients
    loss = weights[0] * approximation.abs().mean()
    for level, detail in enumerate(reversed(details), start=1):
        loss = loss + weights[level] * detail.abs().mean()
    return loss


def local_motion_loss(
    target_residuals: torch.Tensor,
    predicted_residuals: torch.Tensor,
    delta: float = 0.05,
    base: float = 1.0,
    wrap_phase: bool = False,
    relative: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-frequency-weighted L1 distances of the per-frame amplitude and phase spectra.

    Each is the mean over every bin of the full fftshift-ed spectrum, computed on the
    rfft2 half with folded weights (see `sma.spectral.fourier`). `relative` divides the amplitude
    term by the target's own weighted mean amplitude (no gradient through it); phases are angles,
    already free of scale.
    """
    height, width = target_residuals.shape[-2:]
    weights = half_spectrum_weights(height, width, delta, base).to(target_residuals.device, target_residuals.dtype)
    bins = target_residuals.numel()  # the full spectrum has one bin per input value
    target_amplitude, target_phase, predicted_amplitude, predicted_phase = spectra(
        target_residuals, predicted_residuals
    )
    phase_difference = target_phase - predicted_phase
    if wrap_phase:
        phase_difference = torch.remainder(phase_difference + math.pi, 2 * math.pi) - math.pi
    amplitude = (weights * (target_amplitude - predicted_amplitude).abs()).sum() / bins
    phase = (weights * phase_difference.abs()).sum() / bins
    if relative:
        scale = (weights * target_amplitude).sum().detach() / bins
        amplitude = amplitude / scale.clamp_min(torch.finfo(scale.dtype).tiny)
    return amplitude, phase


class SpectralMotionAlignment(nn.Module):
    """SMA regularizer: `global_weight * L_global + local_weight * L_local`.

    Call it with the clean target video and the model's denoised estimate, both
    (b, c, f, h, w): pixels, latents or features. The defaults reproduce the authors'
    implementation (absolute residuals, Haar, zero boundaries, 2 levels, weights 1,
    delta 0.05, base 1, unnormalized FFT, unwrapped phase, mean reductions); only the phase
    of the self-conjugate bins is made deterministic. `scale_free` divides the global and the
    amplitude terms by the reference's own coefficients, so that fixed weights mean the same at
    any resolution, frame count or latent scale. Computed in float32 (float64 kept).
    """

    def __init__(
        self,
        global_weight: float = 0.4,
        local_weight: float = 0.2,
        *,
        wavelet: str = "haar",
        levels: int = 2,
        level_weights: Sequence[float] | None = None,
        boundary: str = "zero",
        delta: float = 0.05,
        base: float = 1.0,
        absolute_residuals: bool = True,
        wrap_phase: bool = False,
        scale_free: bool = False,
    ) -> None:
        super().__init__()
        if global_weight < 0 or local_weight < 0:
            raise ValueError(f"weights must be >= 0, got global_weight={global_weight}, local_weight={local_weight}")
        filter_bank(wavelet)
        check_mode(boundary)
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
        if level_weights is not None and len(level_weights) != levels + 1:
            raise ValueError(
                f"level_weights needs levels + 1 = {levels + 1} values "
                f"(approximation, then details from finest to coarsest), got {len(level_weights)}"
            )
        self.global_weight = float(global_weight)
        self.local_weight = float(local_weight)
        self.wavelet = wavelet
        self.levels = levels
        self.level_weights = None if level_weights is None else tuple(float(w) for w in level_weights)
        self.boundary = boundary
        self.delta = float(delta)
        self.base = float(base)
        self.absolute_residuals = absolute_residuals
        self.wrap_phase = wrap_phase
        self.scale_free = scale_free

    def extra_repr(self) -> str:
        return (
            f"global_weight={self.global_weight}, local_weight={self.local_weight}, wavelet={self.wavelet!r}, "
            f"levels={self.levels}, boundary={self.boundary!r}, absolute_residuals={self.absolute_residuals}"
        )

    def _check(self, target: torch.Tensor, prediction: torch.Tensor) -> None:
        if target.shape != prediction.shape:
            raise ValueError(f"target and prediction shapes differ: {tuple(target.shape)} vs {tuple(prediction.shape)}")
        if target.ndim != 5:
            raise ValueError(f"expected videos shaped (b, c, f, h, w), got shape {tuple(target.shape)}")
        frames = target.shape[2]
        if frames < 2:
            raise ValueError(f"motion needs at least 2 frames, got f={frames}")
        if self.global_weight > 0:
            most = max_levels(frames - 1, self.wavelet, self.boundary)
            if self.levels > most:
                raise ValueError(
                    f"levels={self.levels} is too many for {frames} frames ({frames - 1} residuals) "
                    f"with the {self.wavelet!r} wavelet: at most {most}"
                )

    def terms(self, target: torch.Tensor, prediction: torch.Tensor) -> SpectralMotionTerms:
        """Every term separately, for logging; the total is what `forward` returns."""
        self._check(target, prediction)
        dtype = torch.float64 if torch.float64 in (target.dtype, prediction.dtype) else torch.float32
        with torch.autocast(target.device.type, enabled=False):
            target_residuals = frame_residuals(target.to(dtype), absolute=self.absolute_residuals)
            predicted_residuals = frame_residuals(prediction.to(dtype), absolute=self.absolute_residuals)
            total = target_residuals.new_zeros(())
            global_motion = amplitude = phase = None
            if self.global_weight > 0:
                global_motion = global_motion_loss(
                    target_residuals,
                    predicted_residuals,
                    self.wavelet,
                    self.levels,
                    self.level_weights,
                    self.boundary,
                    self.scale_free,
                )
                total = total + self.global_weight * global_motion
            if self.local_weight > 0:
                amplitude, phase = local_motion_loss(
                    target_residuals, predicted_residuals, self.delta, self.base, self.wrap_phase, self.scale_free
                )
                total = total + self.local_weight * (amplitude + phase)
        return SpectralMotionTerms(total, global_motion, amplitude, phase)

    def forward(self, target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        return self.terms(target, prediction).total
