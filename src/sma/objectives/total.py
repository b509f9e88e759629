"""One way to add SMA to a method's loss terms and total them."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sma.spectral import SpectralMotionAlignment, SpectralMotionTerms

SMA_PARTS = ("global_motion", "local_amplitude", "local_phase")


class ShareControl:
    """Scales SMA so that its share of the objective, sma / (base + sma), tracks `target`.

    The scale is S / (1 - S) times the ratio of running averages of the base objective and of SMA at its own
    weights: a number, so no gradient flows through it, and a running average, so one noisy step does not
    swing it. The share of the loss, not of the gradient norm: it costs nothing, where the gradient's share
    needs a backward pass per term (benchmarks/sma_share.py measures both).
    """

    def __init__(self, target: float, momentum: float = 0.9) -> None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"the share must be in (0, 1), got {target}")
        self.target, self.momentum = target, momentum
        self.base: float | None = None
        self.sma: float | None = None

    def scale(self, base: float, sma: float) -> float:
        """The factor for SMA at this step, after the running averages take in this step's values."""
        keep = self.momentum
        self.base = base if self.base is None else keep * self.base + (1 - keep) * base
        self.sma = sma if self.sma is None else keep * self.sma + (1 - keep) * sma
        if self.sma <= 0:
            return 1.0
        return self.target / (1 - self.target) * self.base / self.sma

    def state(self) -> dict[str, float | None]:
        """The running averages, for a checkpoint: a resumed run scales SMA as if it had never stopped."""
        return {"base": self.base, "sma": self.sma}

    def restore(self, state: dict[str, float | None]) -> None:
        self.base, self.sma = state["base"], state["sma"]


def weighted_terms(
    sma: SpectralMotionAlignment, target: torch.Tensor, prediction: torch.Tensor, weights: torch.Tensor
) -> SpectralMotionTerms:
    """SMA of each sample times its weight (no gradient through the weights), averaged over the batch."""
    parts = [sma.terms(target[index : index + 1], prediction[index : index + 1]) for index in range(len(target))]
    factors = weights.detach().float().tolist()

    def combined(name: str) -> torch.Tensor | None:
        values = [getattr(part, name) for part in parts]
        return None if values[0] is None else sum(f * v for f, v in zip(factors, values, strict=True)) / len(parts)

    return SpectralMotionTerms(*(combined(name) for name in ("total", *SMA_PARTS)))


def with_sma(
    terms: dict[str, torch.Tensor], sma: Sequence[SpectralMotionTerms] = (), share: ShareControl | None = None
) -> dict[str, torch.Tensor]:
    """The base terms, "sma" (the weighted SMA summed over `sma`, e.g. one per feature layer) and "loss",
    the sum of both. The unweighted SMA parts are logged detached as "sma_global_motion", ... and not summed.
    With `share`, SMA is scaled to its share of the objective, the scale logged as "sma_scale".
    """
    terms = dict(terms)
    if sma:
        weighted = sum(part.total for part in sma)
        if share is not None:
            scale = share.scale(float(sum(terms.values()).detach()), float(weighted.detach()))
            weighted = weighted * scale
            terms["sma_scale"] = torch.tensor(scale)
        terms["sma"] = weighted
        for name in SMA_PARTS:
            values = [getattr(part, name) for part in sma if getattr(part, name) is not None]
            if values:
                terms[f"sma_{name}"] = sum(values).detach()
    terms["loss"] = sum(value for name, value in terms.items() if not name.startswith("sma_"))
    return terms
