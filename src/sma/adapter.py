"""The adapter folder: what generation needs besides the base model, in safetensors and JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sma
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.recipes import flatten, load_config
from sma.run_folder import ADAPTER_DIR, CONFIG_FILE, is_run_folder
from sma.video.atomic import atomic_output

if TYPE_CHECKING:  # torch loads with the tensors: the command line checks an adapter's path before that
    import torch

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
        from sma.tensor_files import save_tensors

        with atomic_output(folder, overwrite=True) as staging:
            staging.mkdir()
            save_tensors(self.tensors, staging / TENSORS_FILE)
            reference = {"latents": self.reference_latents, **self.conditions}
            save_tensors({name: tensor.contiguous() for name, tensor in reference.items()}, staging / REFERENCE_FILE)
            about = {
                "format": ADAPTER_FORMAT,
                "sma_version": sma.__version__,
                "method": self.config.method,
                "base_model": self.config.model,
                "revision": self.config.revision,
                "sma": self.config.sma.enabled,
                "tensors": len(self.tensors),
                **self.experts(),
                "config": self.config.to_dict(),
            }
            (staging / ABOUT_FILE).write_text(json.dumps(about, indent=2))

    def experts(self) -> dict[str, dict]:
        """On Wan 2.2 A14B, which file of `sma export` each trained expert's LoRA goes to and where that loads."""
        from sma.backbones.wan import EXPERT_FILES, EXPERT_LOADERS  # here: the CLI reads adapters without torch

        counts = Counter(name.split(".")[0] for name in self.tensors)
        experts = {
            expert: {"tensors": counts[expert], "exported_as": f"FILE-{suffix}.safetensors", **EXPERT_LOADERS[expert]}
            for expert, suffix in EXPERT_FILES.items()
            if counts[expert]
        }
        return {"experts": experts} if experts else {}

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
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise SmaError(f"the adapter has no {path.name} (in {path.parent}): train it again")
    try:
        return load_file(path)
    except (OSError, SafetensorError) as error:
        raise SmaError(f"{path} is damaged ({error}): train the adapter again") from None


def check_named(path: Path) -> None:
    """What generation is named to start from exists (an adapter folder, a file in one, or a run folder)."""
    if not Path(path).exists():
        raise SmaError(f"{path} does not exist: name an adapter folder or a run folder")


def adapter_folder(path: Path) -> Path:
    """The adapter folder `path` names: an adapter folder, a file in one, or a run folder (its final adapter)."""
    path = Path(path)
    check_named(path)
    if path.is_file() and path.name in (ABOUT_FILE, TENSORS_FILE):
        path = path.parent
    if (path / ABOUT_FILE).is_file():
        return path
    if is_run_folder(path):
        if not (path / ADAPTER_DIR / ABOUT_FILE).is_file():
            raise SmaError(f"the run in {path} has no adapter yet: finish its training (`resume`) first")
        return path / ADAPTER_DIR
    raise SmaError(f"{path} is neither an adapter folder ({ABOUT_FILE}) nor a run folder ({CONFIG_FILE})")


def trained_steps(run: Path) -> int | None:
    """The steps the finished training of the run folder `run` took (its adapter's), None before it finished."""
    about = Path(run) / ADAPTER_DIR / ABOUT_FILE
    try:
        return int(json.loads(about.read_text())["config"]["train"]["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
