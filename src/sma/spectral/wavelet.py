"""Discrete wavelet transform along one axis of a tensor, matching PyWavelets.

The official SMA code runs pytorch_wavelets' grouped convolution over a (b, c*h*w, f)
reshape. Here the whole decomposition is one small matrix applied along the frame axis:
frames are few (8 to 24), so the matrix is tiny, built once and cached. Filter banks come
from PyWavelets; boundary handling reproduces its extension modes exactly.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np
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


def _source_index(length: int, filter_length: int, mode: str) -> list[int]:
    """For each sample of the extended signal, the index of the sample it copies (-1: a zero)."""
    pad = filter_length - 1
    if mode == "periodization":
        # PyWavelets repeats the last sample of an odd signal, then wraps around with the
        # filter centred: position p reads sample p - pad + filter_length/2 - 1.
        even_length = length + length % 2
        shift = filter_length // 2 - 1 - pad
        return [min((p + shift) % even_length, length - 1) for p in range(length + 2 * pad)]
    indices = []
    for position in range(-pad, length + pad):
        if mode == "zero":
            index = position if 0 <= position < length else -1
        elif mode == "constant":
            index = min(max(position, 0), length - 1)
        elif mode == "periodic":
            index = position % length
        elif mode == "symmetric":  # half-sample symmetric: ... x1 x0 | x0 x1 ...
            folded = position % (2 * length)
            index = 2 * length - 1 - folded if folded >= length else folded
        else:  # reflect, whole-sample symmetric: ... x2 x1 | x0 x1 x2 ...
            folded = position % (2 * length - 2) if length > 1 else 0
            index = 2 * length - 2 - folded if folded >= length else folded
        indices.append(index)
    return indices


def _level_matrices(length: int, wavelet: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """One level as matrices: approximation = low @ x, detail = high @ x (float64)."""
    low, high = filter_bank(wavelet)
    filter_length = len(low)
    count = coefficient_length(length, filter_length, mode)
    sources = _source_index(length, filter_length, mode)
    matrices = np.zeros((2, count, length))
    for k in range(count):
        for tap in range(filter_length):
            # coefficient k takes sample 2k + 1 - tap of the signal (pywt's convention)
            source = sources[2 * k + filter_length - tap]
            if source >= 0:
                matrices[0, k, source] += low[tap]
                matrices[1, k, source] += high[tap]
    return matrices[0], matrices[1]


@lru_cache(maxsize=64)
def analysis_matrix(length: int, wavelet: str, levels: int, mode: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The whole multilevel decomposition as one matrix, with the row count of each band.

    Every boundary mode extends the signal linearly, so [A_J; D_J; ...; D_1] = M @ x. Along
    the frame axis of a (b, c, f, h, w) video that is one batched matrix product, forward
    and backward, instead of per-tap slices whose gradients each fill a full-size tensor.
    """
    check_mode(mode)
    approximation = np.eye(length)
    details = []
    for _ in range(levels):
        low, high = _level_matrices(approximation.shape[0], wavelet, mode)
        details.append(high @ approximation)
        approximation = low @ approximation
    bands = [approximation, *reversed(details)]
    return torch.from_numpy(np.concatenate(bands)), tuple(band.shape[0] for band in bands)


def _along(matrix: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    """matrix @ x along axis `dim` of x, without moving that axis."""
    dim = dim % x.ndim
    grouped = x.reshape(math.prod(x.shape[:dim]), x.shape[dim], -1)
    product = torch.matmul(matrix.to(x.device, x.dtype), grouped)
    return product.reshape(*x.shape[:dim], matrix.shape[0], *x.shape[dim + 1 :])


def wavedec(
    x: torch.Tensor, wavelet: str = "haar", levels: int = 1, mode: str = "zero", dim: int = -1
) -> list[torch.Tensor]:
    """Multilevel decomposition [A_J, D_J, ..., D_1] along `dim`, equal to pywt.wavedec."""
    matrix, sizes = analysis_matrix(x.shape[dim], wavelet, levels, mode)
    return list(_along(matrix, x, dim).split(sizes, dim=dim))


def dwt(x: torch.Tensor, wavelet: str = "haar", mode: str = "zero", dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """One level: (approximation, detail) along `dim`, equal to pywt.dwt(x, wavelet, mode)."""
    approximation, detail = wavedec(x, wavelet, 1, mode, dim)
    return approximation, detail
