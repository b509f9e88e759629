"""Motion-distillation methods: what trains, with which objective, and how videos are generated."""

from __future__ import annotations

import torch

from sma.config import TransferConfig
from sma.errors import SmaError
from sma.methods.base import MotionMethod
from sma.methods.controlvideo import ControlVideo
from sma.methods.dmt import DMT
from sma.methods.motiondirector import MotionDirector
from sma.methods.tuneavideo import TuneAVideo
from sma.methods.vmc import VMC

METHODS: dict[str, type[MotionMethod]] = {
    method.name: method for method in (VMC, MotionDirector, TuneAVideo, ControlVideo, DMT)
}


def build_method(config: TransferConfig, device: str | torch.device = "cpu") -> MotionMethod:
    """Load the backbone the method runs on, then the method around it."""
    if config.method not in METHODS:
        raise SmaError(f"unknown method {config.method!r}: expected one of {', '.join(METHODS)}")
    method_class = METHODS[config.method]
    return method_class(method_class.load_model(config, device), config)


METHODS: dict[str, type[MotionMethod]] = {
    method.name: method for method in (VMC, MotionDirector, TuneAVideo, ControlVideo, DMT)
}
