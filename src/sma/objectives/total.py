"""One way to add SMA to a method's loss terms and total them."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sma.spectral import SpectralMotionTerms

SMA_PARTS = ("global_motion", "local_amplitude", "local_phase")


def with_sma(terms: dict[str, torch.Tensor], sma: Sequence[SpectralMotionTerms] = ()) -> dict[str, torch.Tensor]:
    """The base terms, "sma" (the weighted SMA summed over `sma`, e.g. one per feature layer) and "loss",
    the sum of both. The unweighted SMA parts are logged detached as "sma_global_motion", ... and not summed.
    """
    terms = dict(terms)
    if sma:
        terms["sma"] = sum(part.total for part in sma)
        for name in SMA_PARTS:
            values = [getattr(part, name) for part in sma if getattr(part, name) is not None]
            if values:
                terms[f"sma_{name}"] = sum(values).detach()
    terms["loss"] = sum(value for name, value in terms.items() if not name.startswith("sma_"))
    return terms
