"""The embedded default models: trained by `sma.embedded.train` on synthetic videos, shipped in the package."""

from __future__ import annotations

from pathlib import Path

from sma.errors import SmaError

MODEL_DIR = Path(__file__).parent / "model"
MODEL_DIRS = {"simple": MODEL_DIR, "hard": Path(__file__).parent / "model-hard"}
SHIPPED_MODELS = {"embedded": "simple", "embedded-hard": "hard"}  # `model` names of the shipped models, by world


def embedded_model(world: str = "simple") -> str:
    """Path of the shipped model folder of a world (diffusers layout, loaded like any local model)."""
    folder = MODEL_DIRS[world]
    if not (folder / "model_index.json").is_file():
        raise SmaError(
            f"the embedded model is missing from {folder}: reinstall sma, or train it with "
            f"`python -m sma.embedded.train --world {world} --out {folder}`"
        )
    return str(folder)
