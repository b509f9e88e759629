"""Gradient checkpointing layer by layer, on every backbone with a video UNet, and the encoders parked while
training: the same gradients as without, every layer of every block recomputed."""

import functools
import re

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from sma.backbones.dispatch import load_text_to_video
from sma.backbones.latent_video import is_checkpointed
from sma.memory_budget import GIB, LayerActivations, estimate, measure_activations, plan_checkpointing, static_bytes
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


def test_saved_activations_are_counted_per_layer_as_autograd_keeps_them():
    """By hand: Linear keeps its input for its weight's gradient, tanh its output; weights are not activations, and
    a layer's output that the next layer keeps is one tensor, counted once."""
    layers = torch.nn.ModuleList(
        [torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh()), torch.nn.Sequential(torch.nn.Linear(32, 8))]
    )
    inputs = torch.randn(5, 16)

    def forward():
        return (layers[1](layers[0](inputs)) * 3).exp().sum()  # exp keeps its output (5 x 8): outside the layers

    measured, outside = measure_activations({"a": layers[0], "b": layers[1]}, forward, layers.parameters())
    floats = 4
    assert measured["a"] == LayerActivations(saved=floats * (5 * 16 + 5 * 32), inputs=floats * 5 * 16)
    assert measured["b"] == LayerActivations(saved=0, inputs=floats * 5 * 32)  # its input: a's output, counted there
    assert outside == floats * 5 * 8


def predict_loss(model, checkpointed: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Gradients of a denoising loss on VMC's parameters, with the named layers recomputed."""
    trained = model.temporal_attention_projections()
    for module in trained.values():
        module.requires_grad_(True)
    model.checkpoint_some_layers(checkpointed or [])
    model.unet.train()
    latents = torch.randn(1, model.unet.config.in_channels, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    text = model.encode_prompts(["a red circle"])
    model.predict(latents, torch.tensor([500]), text).square().mean().backward()
    return {name: module.weight.grad for name, module in trained.items()}


@pytest.fixture(scope="module")
def measured_zeroscope(backbones):
    model = backbones["zeroscope"]()
    for module in model.temporal_attention_projections().values():
        module.requires_grad_(True)
    model.unet.train()
    latents = torch.randn(1, model.unet.config.in_channels, 4, 8, 8)
    text = model.encode_prompts(["a red circle"])
    weights = [tensor for network in model.networks() for tensor in (*network.parameters(), *network.buffers())]
    measured, outside = measure_activations(
        model.checkpointable_layers(), lambda: model.predict(latents, torch.tensor([500]), text), weights
    )
    trained = [module.weight for module in model.temporal_attention_projections().values()]
    return measured, outside, static_bytes(model.networks(), trained, "adamw")


def test_a_budget_recomputes_the_fewest_layers_that_fit_with_the_same_gradients(backbones, measured_zeroscope):
    measured, outside, static = measured_zeroscope
    everything = static + outside + sum(layer.saved for layer in measured.values())
    assert {name for name, layer in measured.items() if layer.saved} >= {"unet.up_blocks.1.temp_attentions.0"}
    assert measured["unet.down_blocks.0.resnets.0"].saved == 0  # before the first trained layer: nothing to keep
    roomy = plan_checkpointing(everything, static, outside, measured)
    assert roomy.checkpointed == [] and roomy.fits and roomy.estimate_gib * GIB == everything
    middle = static + outside + sum(layer.saved for layer in measured.values()) // 2
    subset = plan_checkpointing(middle, static, outside, measured)
    assert subset.fits and 0 < len(subset.checkpointed) < len(measured)
    assert estimate(static, outside, measured, set(subset.checkpointed)) <= middle
    assert estimate(static, outside, measured, set(subset.checkpointed[:-1])) > middle  # one fewer would not fit
    largest = max(measured, key=lambda name: measured[name].saved - measured[name].inputs)
    assert subset.checkpointed[0] == largest
    plain = predict_loss(backbones["zeroscope"]())
    model = backbones["zeroscope"]()
    budgeted = predict_loss(model, subset.checkpointed)
    for name, gradient in plain.items():
        torch.testing.assert_close(budgeted[name], gradient, rtol=1e-5, atol=1e-7)
    wrapped = {name for name, layer in model.checkpointable_layers().items() if is_checkpointed(layer)}
    assert wrapped == set(subset.checkpointed)


def test_a_budget_below_the_weights_recomputes_every_layer_and_says_it_cannot_be_met(measured_zeroscope):
    measured, outside, static = measured_zeroscope
    plan = plan_checkpointing(static // 2, static, outside, measured)
    assert set(plan.checkpointed) == set(measured) and not plan.fits
