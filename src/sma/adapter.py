"""The adapter folder: what generation needs besides the base model, in safetensors and JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import sma
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.recipes import flatten, load_config
from sma.video.atomic import atomic_output

ADAPTER_FORMAT = "sma-adapter"
TENSORS_FILE = "adapter.safetensors"
REFERENCE_FILE = "reference_latents.safetensors"  # "latents" and the conditions, by name
ABOUT_FILE = "adapter.json"


@dataclass
class Adapter:
    """Trained tensors, reference latents (for inversion), the run's settings, and what the model
    is conditioned on (ControlVideo's depth frames)."""

    tensors: dict[str, torch.Tensor]
    reference_latents: torch.Tensor
    config: TransferConfig
    conditions: dict[str, torch.Tensor] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        with atomic_output(folder, overwrite=True) as staging:
            staging.mkdir()
            save_file(self.tensors, staging / TENSORS_FILE)
            reference = {"latents": self.reference_latents, **self.conditions}
            save_file({name: tensor.contiguous() for name, tensor in reference.items()}, staging / REFERENCE_FILE)
            about = {
                "format": ADAPTER_FORMAT,
                "sma_version": sma.__version__,
                "method": self.config.method,
                "base_model": self.config.model,
                "revision": self.config.revision,
                "sma": self.config.sma.enabled,
                "tensors": len(self.tensors),
                "config": self.config.to_dict(),
            }
            (staging / ABOUT_FILE).write_text(json.dumps(about, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Adapter:
        folder = Path(folder)
        about_file = folder / ABOUT_FILE
        if not about_file.is_file():
            raise SmaError(f"no adapter at {folder}: expected {ABOUT_FILE} and {TENSORS_FILE} (made by training)")
        try:
            about = json.loads(about_file.read_text())
        except (OSError, ValueError) as error:
            raise SmaError(f"{about_file} is damaged ({error}): train the adapter again") from None
        if not isinstance(about, dict) or about.get("format") != ADAPTER_FORMAT or "config" not in about:
            raise SmaError(f"{about_file} is not an sma adapter")
        config = load_config(overrides=flatten(about["config"]))
        conditions, tensors = _tensors(folder / REFERENCE_FILE), _tensors(folder / TENSORS_FILE)
        if "latents" not in conditions:
            raise SmaError(f"{folder / REFERENCE_FILE} holds no reference latents: train the adapter again")
        return cls(tensors=tensors, reference_latents=conditions.pop("latents"), config=config, conditions=conditions)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise SmaError(f"the adapter has no {path.name} (in {path.parent}): train it again")
    try:
        return load_file(path)
    except (OSError, SafetensorError) as error:
        raise SmaError(f"{path} is damaged ({error}): train the adapter again") from None
