"""Motion-transfer methods, found by name through one registry.

Adding a method: write its module (a `TrainedMethod` or `ZeroShotMethod` subclass with its
`validate`), add one line here, and its own recipe section, if it has one, to `sma.methods.options`.
Modules are imported when first used, so that listing the methods (the command line's help) and
checking a recipe stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from sma.config import TransferConfig
    from sma.methods.base import Method

# name: (module:class, one line for the command line's help)
METHODS: dict[str, tuple[str, str]] = {
    "vmc": ("sma.methods.vmc:VMC", "temporal-attention q/k/v on residual-noise alignment"),
    "motiondirector": ("sma.methods.motiondirector:MotionDirector", "dual-path spatial/temporal LoRA"),
    "tuneavideo": ("sma.methods.tuneavideo:TuneAVideo", "Stable Diffusion 1.x inflated, sparse-causal attention"),
    "controlvideo": ("sma.methods.controlvideo:ControlVideo", "Stable Diffusion 1.x + ControlNet-Depth"),
    "dmt": ("sma.methods.dmt:DMT", "zero-shot: guides sampling with UNet space-time features"),
    "motionlora": (
        "sma.methods.motionlora:MotionLoRA",
        "Wan (2.1 and 2.2, text or image to video): LoRA on the transformer, flow matching",
    ),
    "flowmotion": ("sma.methods.flowmotion:FlowMotion", "zero-shot: steers sampling with the denoised video's motion"),
}


def method_class(name: str) -> type[Method]:
    from sma.errors import SmaError

    if name not in METHODS:
        raise SmaError(f"unknown method {name!r}: expected one of {', '.join(METHODS)}")
    module, _, attribute = METHODS[name][0].partition(":")
    return getattr(importlib.import_module(module), attribute)


def build_method(config: TransferConfig, device: str | torch.device = "cpu") -> Method:
    """Load the backbone the method runs on, then the method around it."""
    cls = method_class(config.method)
    return cls(cls.load_model(config, device), config)


def methods_help() -> str:
    return "; ".join(f"{name}: {summary}" for name, (_, summary) in METHODS.items())
