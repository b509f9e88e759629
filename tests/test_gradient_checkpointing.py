"""Gradient checkpointing layer by layer, on every backbone with a video UNet, and the encoders parked while
training: the same gradients as without, every layer of every block recomputed."""

import functools
import re

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from sma.backbones.dispatch import load_text_to_video
from tiny_models import build_motion_adapter
from tiny_show1 import build_show1_base

# Written from the UNets' layouts, not from the code under test: a layer is an element of a block's layer list.
LAYER_NAME = re.compile(
    r"((down|up)_blocks\.\d+|mid_block)\.(resnets|temp_convs|attentions|temp_attentions|motion_modules)\.\d+"
    r"|transformer_in"
)


@pytest.fixture(scope="module")
def backbones(model_dir, sd_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpointing")
    return {
        "zeroscope": lambda: load_text_to_video(str(model_dir)),
        "animatediff": lambda: load_text_to_video(
            str(sd_dir), motion_adapter=str(build_motion_adapter(folder / "adapter"))
        ),
        "show1": lambda: load_text_to_video(str(build_show1_base(folder / "show1"))),
    }


def temporal_gradients(model, checkpointed: bool) -> dict[str, torch.Tensor]:
    """Gradients of a denoising loss on the temporal attention projections (VMC's parameters)."""
    trained = model.temporal_attention_projections()
    for module in trained.values():
        module.requires_grad_(True)
    if checkpointed:
        model.enable_gradient_checkpointing()
    model.unet.train()
    generator = torch.Generator().manual_seed(0)
    channels = model.unet.config.in_channels
    latents = torch.randn(1, channels, 4, 8, 8, generator=generator)
    text = model.encode_prompts(["a red circle"])
    prediction = model.predict(latents, torch.tensor([500]), text)
    prediction.square().mean().backward()
    return {name: module.weight.grad for name, module in trained.items()}


@pytest.mark.parametrize("backbone", ["zeroscope", "animatediff", "show1"])
def test_each_layer_is_recomputed_and_gradients_are_unchanged(backbones, backbone):
    plain = temporal_gradients(backbones[backbone](), checkpointed=False)
    model = backbones[backbone]()
    checkpointed = temporal_gradients(model, checkpointed=True)
    assert plain.keys() == checkpointed.keys() and plain
    for name, gradient in plain.items():
        torch.testing.assert_close(checkpointed[name], gradient, rtol=1e-5, atol=1e-7)
    layers = {name: module for name, module in model.unet.named_modules() if LAYER_NAME.fullmatch(name)}
    wrapped = {
        name
        for name, module in layers.items()
        if isinstance(module.forward, functools.partial) and module.forward.func is checkpoint
    }
    assert layers and wrapped == set(layers)
    assert any("motion_modules" in name or "temp_attentions" in name for name in wrapped)  # what VMC trains


def test_encoders_wait_on_another_device_while_training(backbones):
    model = backbones["zeroscope"]()
    model.move_encoders("meta")
    assert model.vae.device.type == "meta" and model.text_encoder.device.type == "meta"
    assert model.unet.device.type == "cpu"
