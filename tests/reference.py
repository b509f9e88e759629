"""Independent float64 references of the SMA terms, written from docs/design.md §1 with numpy and PyWavelets."""

from __future__ import annotations

import numpy as np
import pywt


def residuals(video: np.ndarray, absolute: bool = True) -> np.ndarray:
    difference = video[:, :, 1:] - video[:, :, :-1]
    return np.abs(difference) if absolute else difference


def global_term(target, prediction, wavelet="haar", levels=2, level_weights=None, mode="zero", absolute=True):
    weights = level_weights or [1.0] * (levels + 1)
    target_coefficients = pywt.wavedec(residuals(target, absolute), wavelet, mode=mode, level=levels, axis=2)
    predicted_coefficients = pywt.wavedec(residuals(prediction, absolute), wavelet, mode=mode, level=levels, axis=2)
    # pywt order: [A_J, D_J, ..., D_1]; weights: [w_0 (A_J), w_1 (D_1), ..., w_J (D_J)]
    total = weights[0] * np.mean(np.abs(target_coefficients[0] - predicted_coefficients[0]))
    for j in range(1, levels + 1):
        detail = -j  # D_j sits j places from the end
        total += weights[j] * np.mean(np.abs(target_coefficients[detail] - predicted_coefficients[detail]))
    return total


def weight_map(h, w, delta=0.05, base=1.0):
    a, b = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return ((h / 2) ** 2 + (w / 2) ** 2) ** delta - ((a - h / 2) ** 2 + (b - w / 2) ** 2) ** delta + base


def shifted_spectrum(frames):
    """fftn over (h, w), self-conjugate bins forced real, then fftshift."""
    h, w = frames.shape[-2:]
    spectrum = np.fft.fftn(frames, axes=(-2, -1))
    for row in {0, h // 2} if h % 2 == 0 else {0}:
        for col in {0, w // 2} if w % 2 == 0 else {0}:
            spectrum[..., row, col] = spectrum[..., row, col].real
    return np.fft.fftshift(spectrum, axes=(-2, -1))


def local_terms(target, prediction, delta=0.05, base=1.0, absolute=True, wrap=False):
    h, w = target.shape[-2:]
    weights = weight_map(h, w, delta, base)
    spectrum_t = shifted_spectrum(residuals(target, absolute))
    spectrum_p = shifted_spectrum(residuals(prediction, absolute))
    amplitude = np.mean(weights * np.abs(np.abs(spectrum_t) - np.abs(spectrum_p)))
    phase_difference = np.angle(spectrum_t) - np.angle(spectrum_p)
    if wrap:
        phase_difference = np.angle(np.exp(1j * phase_difference))
    phase = np.mean(weights * np.abs(phase_difference))
    return amplitude, phase
