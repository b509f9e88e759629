"""Motion-distillation methods: what trains, with which objective, and how videos are generated."""

from __future__ import annotations

from sma.backbones.text_to_video import TextToVideoModel
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.methods.base import MotionMethod
from sma.methods.motiondirector import MotionDirector
from sma.methods.vmc import VMC

METHODS: dict[str, type[MotionMethod]] = {VMC.name: VMC, MotionDirector.name: MotionDirector}


def build_method(model: TextToVideoModel, config: TransferConfig) -> MotionMethod:
    if config.method not in METHODS:
        raise SmaError(f"unknown method {config.method!r}: expected one of {', '.join(METHODS)}")
    return METHODS[config.method](model, config)


__all__ = ["METHODS", "VMC", "MotionDirector", "MotionMethod", "build_method"]
