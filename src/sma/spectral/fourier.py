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


def self_conjugate_slices(height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the rfft2 bins equal to their own conjugate: (0 or h/2, 0 or w/2)."""
    rows = slice(0, height, height // 2) if height % 2 == 0 else slice(0, 1)
    cols = slice(0, width // 2 + 1, width // 2) if width % 2 == 0 else slice(0, 1)
    return rows, cols


class _PairSpectra(torch.autograd.Function):
    """Amplitude and phase of the rfft2 of two videos, in one pass, with a fused backward.

    Both videos go through one rfft2 and one `angle` call: on small latents the per-call
    overhead and thread granularity dominate, and one call over both is measurably faster
    than two. The backward is written out. For z = x + iy with amplitude a,
    da = (x dx + y dy) / a and dphase = (x dy - y dx) / a^2, so the gradient on z is
    z * (g_a + i g_phase / a) / a; the rfft2 of real frames then back-propagates as
    h * w * irfft2 of that gradient with the folded columns halved (they stand for two
    bins of the full spectrum). The amplitude is sqrt(x^2 + y^2) on real views, which is
    vectorized, unlike complex abs.
    """

    @staticmethod
    def forward(ctx, first: torch.Tensor, second: torch.Tensor):
        height, width = first.shape[-2:]
        transform = torch.fft.rfft2(torch.cat([first, second]))
        rows, cols = self_conjugate_slices(height, width)
        transform.imag[..., rows, cols] = 0.0  # exactly real: phase exactly 0 or pi
        real, imaginary = transform.real, transform.imag
        amplitude = (real * real + imaginary * imaginary).sqrt()
        phase = transform.angle()
        ctx.save_for_backward(transform, amplitude)
        ctx.split = first.shape[0]
        ctx.size = (height, width)
        amplitudes, phases = amplitude.split(ctx.split), phase.split(ctx.split)
        return amplitudes[0], phases[0], amplitudes[1], phases[1]

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        transform, amplitude = ctx.saved_tensors
        height, width = ctx.size
        results = []
        for index, part in enumerate((slice(None, ctx.split), slice(ctx.split, None))):
            if not ctx.needs_input_grad[index]:
                results.append(None)
                continue
            grad_amplitude, grad_phase = grads[2 * index], grads[2 * index + 1]
            safe_amplitude = amplitude[part].masked_fill(amplitude[part] == 0, 1.0)  # z = 0 there: gradient 0
            grad = transform[part] * (torch.complex(grad_amplitude, grad_phase / safe_amplitude) / safe_amplitude)
            grad[..., 1 : (width + 1) // 2] *= 0.5
            results.append(torch.fft.irfft2(grad, s=(height, width)) * (height * width))
        return tuple(results)


def spectra(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Amplitude and phase of the unnormalized rfft2 of two equally shaped real tensors.

    Returns (first amplitude, first phase, second amplitude, second phase), each on the
    rfft2 layout (..., h, w//2 + 1). The bins that are their own conjugate are real in
    exact arithmetic; the FFT leaves rounding noise in their imaginary part, and `angle`
    would then jump between +pi and -pi at random. Their phase is exactly 0 or pi here.
    """
    return _PairSpectra.apply(first, second)
