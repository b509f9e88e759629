"""The `show1` recipe section: how far Show-1's cascade takes the keyframes, and the models and steps of its stages.

A section the Show-1 backbone owns (`sma.backbones.sections`): the recipe reads it like a shared one, and
`sma.runs` asks it to check a run before anything loads and to run its stages after generation. Light to
import (the command line's help reads its names, without torch): it checks the stage models' sources itself through
`sma.backbones.hub`, imported when it checks, and imports the cascade (`sma.backbones.show1_cascade`) only to run it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sma.config import BackboneSection
from sma.errors import SmaError

if TYPE_CHECKING:
    import torch

    from sma.backbones.show1 import Show1Model
    from sma.config import TransferConfig

STAGES = ("base", "interp", "sr1", "sr2")  # Show-1's cascade in order: keyframes, then 29 frames, 160x256, 320x576
STAGE_MODELS = {"interp": ("interpolation",), "sr1": ("image_sr", "sr1"), "sr2": ("sr2",)}  # keys of `show1`
MODEL_KEYS = tuple(key for keys in STAGE_MODELS.values() for key in keys)
COUNTS = ("interp_steps", "image_sr_steps", "sr1_steps", "sr2_steps", "sr2_height", "sr2_width")  # each >= 1


def stages_after_base(last: str) -> list[str]:
    """The stages that run after the keyframes, up to `last`."""
    if last not in STAGES:
        raise SmaError(f"`show1.stages` must be one of {', '.join(STAGES)}, got {last!r}")
    return list(STAGES[1 : STAGES.index(last) + 1])


def check_sources(settings: Show1Options) -> None:
    """Fail before the base stage runs when a later stage's model is neither a folder, nor in the Hub cache,
    nor downloadable."""
    from sma.backbones.hub import ModelNotFoundError, cached_snapshot, hub_reachable, local_folder

    for stage in stages_after_base(settings.stages):
        for key in STAGE_MODELS[stage]:
            source = getattr(settings, key)
            try:
                folder = local_folder(source, "a model folder in diffusers layout")
            except ModelNotFoundError as error:
                raise SmaError(f"`show1.{key}`: {error}") from error
            if folder is None and cached_snapshot(source, None) is None and not hub_reachable():
                raise SmaError(
                    f"`show1.{key}`: {source!r} is not in the local Hugging Face cache and the Hub cannot be "
                    f"reached: download it (`hf download {source} --local-dir DIR`) and set `show1.{key}` to DIR"
                )


@dataclass
class Show1Options(BackboneSection):
    """Generation through Show-1's cascade after the base stage (a Show-1 `model` only); the stage models are
    Hub ids or folders, the step counts the authors'."""

    stages: str = "base"  # base | interp | sr1 | sr2: the last stage run
    interpolation: str = "showlab/show-1-interpolation"
    image_sr: str = "DeepFloyd/IF-II-L-v1.0"  # the first frame of sr1
    sr1: str = "showlab/show-1-sr1"
    sr2: str = "showlab/show-1-sr2"
    interp_steps: int = 75
    image_sr_steps: int = 70
    sr1_steps: int = 125
    sr2_steps: int = 50  # of which strength 0.8 runs: 40
    sr2_height: int = 320
    sr2_width: int = 576
    sr2_negative_prompt: str = "low resolution, blur"

    def validate(self) -> None:
        stages_after_base(self.stages)
        for name in COUNTS:
            if getattr(self, name) < 1:
                raise SmaError(f"`show1.{name}` must be >= 1, got {getattr(self, name)}")

    def check(self, config: TransferConfig) -> None:
        """Stages after base need a Show-1 model and their own models, reachable."""
        if self.stages == "base":
            return
        from sma.backbones.hub import model_index
        from sma.backbones.show1 import PIPELINE

        if model_index(config.model, config.revision or None).get("_class_name") != PIPELINE:
            raise SmaError(
                f"`show1.stages` {self.stages} takes Show-1's keyframes further, but {config.model} is not "
                f"Show-1's base stage ({PIPELINE}): set `show1.stages` to base"
            )
        check_sources(self)

    def later_stages(self) -> list[str]:
        return stages_after_base(self.stages)

    def run_later_stages(
        self, model: Show1Model, keyframes: list[torch.Tensor], targets: list[str], negative_prompt: str, seed: int
    ) -> AbstractContextManager[Iterator[tuple[str, list[torch.Tensor]]]]:
        from sma.backbones.show1_cascade import cascade_after

        return cascade_after(model, keyframes, targets, negative_prompt, self, seed)
