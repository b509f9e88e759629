"""Forward + backward time of each SMA term against the authors' formulation.

The authors compute the global term with pytorch_wavelets' DWT1DForward over a
(b, c*h*w, f) reshape, and the local term with a full fftn + fftshift. This script times
both formulations and sma's on the latent shapes of ZeroScope, Show-1 and AnimateDiff,
interleaving the runs and reporting medians, and prints the largest difference in value.

    pip install -e '.[bench]' && python benchmarks/sma_loss.py [--threads 2] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from pytorch_wavelets import DWT1DForward

from sma import SpectralMotionAlignment
from sma.spectral.fourier import low_frequency_weights

SHAPES = {
    "ZeroScope": (1, 4, 24, 40, 72),
    "Show-1": (1, 3, 8, 40, 64),
    "AnimateDiff": (1, 4, 16, 64, 64),
}


def levels_for(frames: int) -> int:
    """The official README: 2 levels for 8 frames, 3 for 16 (and longer clips)."""
    return 2 if frames <= 8 else 3


def authors_global(levels: int):
    transform = DWT1DForward(wave="haar", J=levels, mode="zero")

    def loss(target, prediction):
        b, c, f, h, w = target.shape

        def coefficients(video):
            flat = video.permute(0, 1, 3, 4, 2).reshape(b, c * h * w, f).float()
            return transform((flat[:, :, 1:] - flat[:, :, :-1]).abs())

        (low_t, high_t), (low_p, high_p) = coefficients(target), coefficients(prediction)
        total = (low_t - low_p).abs().mean()
        for detail_t, detail_p in zip(high_t, high_p, strict=True):
            total = total + (detail_t - detail_p).abs().mean()
        return total

    return loss


def authors_local(target, prediction, real_self_conjugate_bins=False):
    """The authors' local term; optionally with sma's one change (DC/Nyquist bins exactly real)."""
    h, w = target.shape[-2:]
    weights = low_frequency_weights(h, w).float()

    def shifted_spectrum(video):
        residuals = (video[:, :, 1:] - video[:, :, :-1]).abs().float()
        spectrum = torch.fft.fftn(residuals, dim=(-2, -1))
        if real_self_conjugate_bins:
            rows = [0, h // 2] if h % 2 == 0 else [0]
            cols = [0, w // 2] if w % 2 == 0 else [0]
            for row in rows:
                for col in cols:
                    spectrum[..., row, col] = spectrum[..., row, col].real
        return torch.fft.fftshift(spectrum, dim=(-2, -1))

    spectrum_t, spectrum_p = shifted_spectrum(target), shifted_spectrum(prediction)
    amplitude = (weights * (spectrum_t.abs() - spectrum_p.abs()).abs()).mean()
    phase = (weights * (spectrum_t.angle() - spectrum_p.angle()).abs()).mean()
    return amplitude + phase


def forward_backward_seconds(loss, target, prediction) -> tuple[float, float]:
    prediction.grad = None
    start = time.perf_counter()
    value = loss(target, prediction)
    value.backward()
    return time.perf_counter() - start, value.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} interleaved repeats, medians")
    print(
        f"{'model latents':<32}{'term':<8}{'authors ms':>12}{'sma ms':>10}{'speed-up':>10}"
        f"{'rel diff':>11}{'rel diff*':>11}"
    )
    for name, shape in SHAPES.items():
        generator = torch.Generator().manual_seed(0)
        target = torch.randn(shape, generator=generator)
        prediction = (target + 0.5 * torch.randn(shape, generator=generator)).requires_grad_(True)
        levels = levels_for(shape[2])
        candidates = {
            "global": (authors_global(levels), SpectralMotionAlignment(1.0, 0.0, levels=levels)),
            "local": (authors_local, SpectralMotionAlignment(0.0, 1.0, levels=levels)),
        }
        for term, (reference, ours) in candidates.items():
            times = {"authors": [], "sma": []}
            values = {}
            for _ in range(args.repeats):
                for label, loss in (("authors", reference), ("sma", ours)):
                    seconds, values[label] = forward_backward_seconds(loss, target, prediction)
                    times[label].append(seconds)
            authors_ms = 1e3 * statistics.median(times["authors"])
            sma_ms = 1e3 * statistics.median(times["sma"])
            deterministic = (
                authors_local(target, prediction, real_self_conjugate_bins=True).item()
                if term == "local"
                else values["authors"]
            )
            print(
                f"{name + ' ' + str(shape):<32}{term:<8}{authors_ms:>12.2f}{sma_ms:>10.2f}"
                f"{authors_ms / sma_ms:>9.1f}x{relative_difference(values['sma'], values['authors']):>11.1e}"
                f"{relative_difference(values['sma'], deterministic):>11.1e}"
            )
    print("rel diff*: against the authors' formulation with the DC/Nyquist bins made exactly real, as sma does")


def relative_difference(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


if __name__ == "__main__":
    main()
