"""Per-frame 2D spectra and the low-frequency weights of SMA's local term.

The official code takes a full `fftn` over (h, w), `fftshift`s it and weights every bin.
For a real frame the spectrum is conjugate-symmetric: bin -k has the amplitude of bin k
and the opposite phase, so |difference| is the same at both. `rfft2` keeps one bin of
each pair; folding the weight of the dropped partner onto the kept bin gives the same
weighted sums for half the transform and half the amplitude and phase work.
"""

from __future__ import annotations

from functools import lru_cache

import torch


def low_frequency_weights(height: int, width: int, delta: float = 0.05, base: float = 1.0) -> torch.Tensor:
    """W(a, b) over the fftshift-ed spectrum: largest at the centre (DC), `base` at the corners.

    W(a, b) = ((h/2)^2 + (w/2)^2)^delta - ((a - h/2)^2 + (b - w/2)^2)^delta + base,
    with a, b the integer row and column indices, as in the authors' implementation.
    """
    rows = torch.arange(height, dtype=torch.float64)[:, None]
    cols = torch.arange(width, dtype=torch.float64)[None, :]
    radius = (rows - height / 2) ** 2 + (cols - width / 2) ** 2
    return ((height / 2) ** 2 + (width / 2) ** 2) ** delta - radius**delta + base


@lru_cache(maxsize=32)
def half_spectrum_weights(height: int, width: int, delta: float = 0.05, base: float = 1.0) -> torch.Tensor:
    """Weights on the rfft2 layout (h, w//2 + 1) whose weighted sum equals the full one."""
    full = torch.fft.ifftshift(low_frequency_weights(height, width, delta, base))
    rows = torch.arange(height)
    cols = torch.arange(width // 2 + 1)
    weights = full[:, cols].clone()
    # Columns 1 .. ceil(w/2)-1 have their conjugate partners (-u, -v) outside the half.
    folded = cols[(cols >= 1) & (cols < (width + 1) // 2)]
    partners = full[(-rows % height)[:, None], (-folded % width)[None, :]]
    weights[:, folded] += partners
    return weights


def _self_conjugate_slices(height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the rfft2 bins equal to their own conjugate: (0 or h/2, 0 or w/2)."""
    rows = slice(0, height, height // 2) if height % 2 == 0 else slice(0, 1)
    cols = slice(0, width // 2 + 1, width // 2) if width % 2 == 0 else slice(0, 1)
    return rows, cols


class _PolarForm(torch.autograd.Function):
    """Amplitude and phase of a complex tensor with one fused backward.

    For z = x + iy with amplitude a: da = (x dx + y dy) / a and dphase = (x dy - y dx) / a^2,
    so the gradient is z * (g_a + i g_phase / a) / a. PyTorch's separate abs and angle
    backwards take several more passes over the spectrum; this is the measured hot spot of
    the local term. The amplitude is sqrt(x^2 + y^2) on real views, vectorized unlike
    complex abs.
    """

    @staticmethod
    def forward(ctx, transform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        real, imaginary = transform.real, transform.imag
        amplitude = (real * real + imaginary * imaginary).sqrt()
        phase = transform.angle()
        ctx.save_for_backward(transform, amplitude)
        return amplitude, phase

    @staticmethod
    def backward(ctx, grad_amplitude: torch.Tensor, grad_phase: torch.Tensor) -> torch.Tensor:
        transform, amplitude = ctx.saved_tensors
        safe_amplitude = torch.where(amplitude == 0, 1.0, amplitude)  # z = 0 there: gradient 0
        return transform * (torch.complex(grad_amplitude, grad_phase / safe_amplitude) / safe_amplitude)


def spectrum(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitude and phase of the unnormalized rfft2 over the last two axes.

    The bins that are their own conjugate are real in exact arithmetic; the FFT leaves
    rounding noise in their imaginary part, and `angle` would then jump between +pi and
    -pi at random. Their imaginary part is set to exactly +0, so their phase is 0 or pi.
    """
    transform = torch.fft.rfft2(frames)
    rows, cols = _self_conjugate_slices(*frames.shape[-2:])
    transform.imag[..., rows, cols] = 0.0
    return _PolarForm.apply(transform)
