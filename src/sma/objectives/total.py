"""One way to add SMA to a method's loss terms and total them."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sma.spectral import SpectralMotionAlignment, SpectralMotionTerms

SMA_PARTS = ("global_motion", "local_amplitude", "local_phase")


class ShareControl:
    """Scales SMA so that its share of the objective over the run, sum sma / sum (base + sma) (what metrics.json
    records as `sma_share`), comes to `target`.

    Each step's scale is a number set from the steps before it: no gradient flows through it, and it does not follow
    the step's own SMA (which would cancel any weighting of it, `sma.timestep_weight`). It is the scale that gave the
    target over those steps, S / (1 - S) x sum base / sum SMA, plus `gain` times their shortfall, S / (1 - S) x sum
    base - sum scaled SMA, spread over a step of mean SMA: an integral control, so the run's share closes on S
    within 0.05 after about 20 steps (benchmarks/sma_share.py measures it), where running averages of each term
    stay off by the losses' heavy tails (0.08 after 40 VMC steps at S = 0.2 on the embedded model). The first step
    takes its own values. The share of the loss, not of the gradient norm: it costs nothing, where the gradient's
    share needs a backward pass per term.
    """

    def __init__(self, target: float, gain: float = 0.25) -> None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"the share must be in (0, 1), got {target}")
        self.target, self.gain = target, gain
        self.steps, self.base, self.sma, self.scaled = 0, 0.0, 0.0, 0.0  # sums over the steps so far

    def scale(self, base: float, sma: float) -> float:
        """The factor for SMA at this step (>= 0); then the sums take in this step's values."""
        ratio = self.target / (1 - self.target)
        if self.sma > 0:
            shortfall = ratio * self.base - self.scaled
            factor = max(0.0, (ratio * self.base + self.gain * shortfall * self.steps) / self.sma)
        else:  # nothing measured yet: this step's own values
            factor = ratio * base / sma if sma > 0 else 1.0
        self.steps, self.base, self.sma = self.steps + 1, self.base + base, self.sma + sma
        self.scaled += factor * sma
        return factor

    def state(self) -> dict[str, float]:
        """The sums so far, for a checkpoint: a resumed run scales SMA as if it had never stopped."""
        return {"steps": self.steps, "base": self.base, "sma": self.sma, "scaled": self.scaled}

    def restore(self, state: dict[str, float]) -> None:
        self.steps, self.base, self.sma, self.scaled = state["steps"], state["base"], state["sma"], state["scaled"]


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
