"""The embedded default model: trained by `sma.embedded.train` on synthetic videos, shipped in the package."""

from __future__ import annotations

from pathlib import Path

from sma.errors import SmaError

MODEL_DIR = Path(__file__).parent / "model"


def embedded_model() -> str:
    """Path of the shipped model folder (diffusers layout, loaded like any local model)."""
    if not (MODEL_DIR / "model_index.json").is_file():
        raise SmaError(
            f"the embedded model is missing from {MODEL_DIR}: reinstall sma, or train it with "
            f"`python -m sma.embedded.train --out {MODEL_DIR}`"
        )
    return str(MODEL_DIR)
