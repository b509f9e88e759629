"""Discrete wavelet transform along one axis of a tensor, matching PyWavelets.

The official SMA code runs pytorch_wavelets' grouped convolution over a (b, c*h*w, f)
reshape. Here each filter tap is a strided slice along the frame axis, so the tensor is
never reshaped and a Haar level costs two multiply-adds per coefficient. Filter banks
come from PyWavelets; boundary handling reproduces its extension modes exactly.
"""

from __future__ import annotations

from functools import cache

import pywt
import torch

BOUNDARY_MODES = ("zero", "constant", "symmetric", "reflect", "periodic", "periodization")


@cache
def filter_bank(wavelet: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Decomposition low-pass and high-pass filters of a discrete wavelet PyWavelets knows."""
    if wavelet not in pywt.wavelist(kind="discrete"):
        raise ValueError(
            f"unknown wavelet {wavelet!r}: expected a discrete wavelet PyWavelets knows, "
            "such as 'haar', 'db2' or 'sym4' (see pywt.wavelist(kind='discrete'))"
        )
    bank = pywt.Wavelet(wavelet)
    return tuple(bank.dec_lo), tuple(bank.dec_hi)


def check_mode(mode: str) -> None:
    if mode not in BOUNDARY_MODES:
        raise ValueError(f"unknown boundary mode {mode!r}: expected one of {', '.join(BOUNDARY_MODES)}")


def coefficient_length(length: int, filter_length: int, mode: str) -> int:
    """Number of coefficients one level produces from `length` samples (as pywt.dwt_coeff_len)."""
    if mode == "periodization":
        return (length + 1) // 2
    return (length + filter_length - 1) // 2


def max_levels(length: int, wavelet: str = "haar", mode: str = "zero") -> int:
    """Most levels for which every level still shortens the approximation (at least one).

    Past that point a level only re-transforms a signal that no longer shrinks; with
    Haar this allows 3 levels for 7 residual frames and 4 for 15, the levels the paper's
    text uses for 8 and 16 frames.
    """
    filter_length = len(filter_bank(wavelet)[0])
    levels = 0
    while length > 1 and coefficient_length(length, filter_length, mode) < length:
        length = coefficient_length(length, filter_length, mode)
        levels += 1
    return max(levels, 1)


def _source_index(length: int, filter_length: int, mode: str) -> torch.Tensor:
    """For each sample of the extended signal, the index of the sample it copies."""
    pad = filter_length - 1
    if mode == "periodization":
        # PyWavelets repeats the last sample of an odd signal, then wraps around with the
        # filter centred: position p reads sample p - pad + filter_length/2 - 1.
        even_length = length + length % 2
        positions = torch.arange(length + 2 * pad) - pad + filter_length // 2 - 1
        return (positions % even_length).clamp(max=length - 1)
    positions = torch.arange(-pad, length + pad)
    if mode == "constant":
        return positions.clamp(0, length - 1)
    if mode == "periodic":
        return positions % length
    if mode == "symmetric":  # half-sample symmetric: ... x1 x0 | x0 x1 ...
        folded = positions % (2 * length)
        return torch.where(folded >= length, 2 * length - 1 - folded, folded)
    if mode == "reflect":  # whole-sample symmetric: ... x2 x1 | x0 x1 x2 ...
        if length == 1:
            return torch.zeros_like(positions)
        folded = positions % (2 * length - 2)
        return torch.where(folded >= length, 2 * length - 2 - folded, folded)
    raise ValueError(f"no index extension for mode {mode!r}")


def _extend(x: torch.Tensor, dim: int, filter_length: int, mode: str) -> torch.Tensor:
    pad = filter_length - 1
    if mode == "zero":
        shape = list(x.shape)
        shape[dim] = pad
        zeros = x.new_zeros(shape)
        return torch.cat([zeros, x, zeros], dim=dim)
    index = _source_index(x.shape[dim], filter_length, mode).to(x.device)
    return x.index_select(dim, index)


def dwt(x: torch.Tensor, wavelet: str = "haar", mode: str = "zero", dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """One level: (approximation, detail) along `dim`, equal to pywt.dwt(x, wavelet, mode)."""
    check_mode(mode)
    low, high = filter_bank(wavelet)
    dim = dim % x.ndim
    filter_length = len(low)
    count = coefficient_length(x.shape[dim], filter_length, mode)
    extended = _extend(x, dim, filter_length, mode)
    lead = (slice(None),) * dim
    approximation = detail = None
    for tap, (lo, hi) in enumerate(zip(low, high, strict=True)):
        # coefficient k takes sample 2k + 1 - tap of the signal (pywt's convention)
        start = filter_length - tap
        samples = extended[(*lead, slice(start, start + 2 * count - 1, 2))]
        approximation = lo * samples if approximation is None else approximation + lo * samples
        detail = hi * samples if detail is None else detail + hi * samples
    return approximation, detail


def wavedec(
    x: torch.Tensor, wavelet: str = "haar", levels: int = 1, mode: str = "zero", dim: int = -1
) -> list[torch.Tensor]:
    """Multilevel decomposition [A_J, D_J, ..., D_1], the order of pywt.wavedec."""
    details = []
    approximation = x
    for _ in range(levels):
        approximation, detail = dwt(approximation, wavelet, mode, dim)
        details.append(detail)
    return [approximation, *reversed(details)]
