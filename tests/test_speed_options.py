"""Speed and memory options that must not change the numbers: regional compilation (`train.compile`,
`generate.compile`) and gradient checkpointing within a memory budget (`train.memory_budget_gb`), through the
real training loop on the tiny ZeroScope-layout model."""

import functools
import json

import pytest
import torch

from sma.backbones.dispatch import load_text_to_video
from sma.backbones.latent_video import COMPILE_BACKEND, LatentVideoModel, compile_layers, is_checkpointed
from sma.errors import SmaError
from sma.memory_budget import MemoryBudgetWarning, estimate, measure_activations, plan_checkpointing
from sma.methods import build_method
from sma.recipes import load_config
from sma.runs import Adapter, train, transfer

SIZE = 32
# aot_eager runs the traced graphs through AOTAutograd (functionalised forward and backward, as inductor gets
# them) without generating code: seconds on a CPU, where inductor takes minutes
TEST_BACKEND = "aot_eager"


def tiny_config(model_dir, **overrides):
    values = {
        "model": str(model_dir),
        "prompt": "a red circle moving right",
        "targets": ["a blue square"],
        "video.frames": 8,
        "video.height": SIZE,
        "video.width": SIZE,
        "train.steps": 2,
        "train.checkpoint_every": 2,
        "generate.steps": 2,
        "generate.inversion_steps": 2,
    } | overrides
    return load_config(overrides=values)


def gradients(model, compiled: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and VMC's gradients of a denoising loss, `temp_attentions.1` of `up_blocks.1` recomputed and the
    `compiled` layers compiled."""
    trained = model.temporal_attention_projections()
    for module in trained.values():
        module.requires_grad_(True)
    layers = model.checkpointable_layers()
    model.checkpoint_some_layers(["unet.up_blocks.1.temp_attentions.1"])
    compile_layers(layers[name] for name in compiled)
    model.unet.train()
    latents = torch.randn(1, model.unet.config.in_channels, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    output = model.predict(latents, torch.tensor([500]), model.encode_prompts(["a red circle"]))
    output.square().mean().backward()
    return output.detach(), {name: module.weight.grad for name, module in trained.items()}


def test_compiled_layers_give_the_same_outputs_and_gradients(model_dir, monkeypatch):
    """A recomputed layer (its compiled code inside the checkpoint) and a plain one; float tolerance 1e-5."""
    monkeypatch.setenv(COMPILE_BACKEND, TEST_BACKEND)
    plain_output, plain = gradients(load_text_to_video(str(model_dir)), [])
    model = load_text_to_video(str(model_dir))
    compiled = ["unet.up_blocks.1.temp_attentions.1", "unet.up_blocks.1.resnets.1"]
    output, budgeted = gradients(model, compiled)
    torch.testing.assert_close(output, plain_output, rtol=1e-5, atol=1e-6)
    for name, gradient in plain.items():
        torch.testing.assert_close(budgeted[name], gradient, rtol=1e-5, atol=1e-7)
    layers = model.checkpointable_layers()
    assert is_checkpointed(layers[compiled[0]]) and not is_checkpointed(layers[compiled[1]])
    assert all(type(layers[name].forward).__name__ != "method" for name in compiled)  # no longer the bound forward


def test_training_and_generation_compile_the_denoiser_when_asked(model_dir, reference, tmp_path, monkeypatch):
    """The flags reach `compile_layers`: training's after its checkpointing is set up, generation's before sampling."""
    calls = []

    def record(model):
        layers = model.checkpointable_layers().values()
        calls.append(("training" if model.unet.training else "generation", any(map(is_checkpointed, layers))))

    monkeypatch.setattr(LatentVideoModel, "compile_layers", record)
    options = {"train.steps": 1, "train.gradient_checkpointing": True, "train.compile": True, "generate.compile": True}
    transfer(tiny_config(model_dir, **options), reference, tmp_path / "run")
    assert calls == [("training", True), ("generation", False)]


def test_a_budget_that_cannot_be_met_recomputes_every_layer_says_so_and_trains_the_same(model_dir, reference, tmp_path):
    plain = Adapter.load(train(tiny_config(model_dir), reference, tmp_path / "plain") / "adapter").tensors
    with pytest.warns(MemoryBudgetWarning, match="cannot be met: every layer is recomputed"):
        run = train(tiny_config(model_dir, **{"train.memory_budget_gb": 1e-4}), reference, tmp_path / "budget")
    budgeted = Adapter.load(run / "adapter").tensors
    for name, tensor in plain.items():
        torch.testing.assert_close(budgeted[name], tensor, rtol=1e-5, atol=1e-6)
    plan = json.loads((run / "metrics.json").read_text())["checkpointing"]
    assert not plan["fits"] and len(plan["checkpointed"]) == plan["layers"] > 0
    assert plan["estimate_gib"] > plan["static_gib"] > plan["budget_gib"]


def test_a_roomy_budget_recomputes_nothing(model_dir, reference, tmp_path):
    run = train(tiny_config(model_dir, **{"train.memory_budget_gb": 1000.0}), reference, tmp_path / "roomy")
    plan = json.loads((run / "metrics.json").read_text())["checkpointing"]
    assert plan["fits"] and plan["checkpointed"] == [] and plan["estimate_gib"] == plan["unplanned_gib"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.gradient_checkpointing": "some"}, "must be true, false or budget"),
        ({"train.memory_budget_gb": 0.0}, "must be above 0"),
        ({"method": "dmt", "generate.compile": True}, "unset `generate.compile`"),
    ],
)
def test_speed_settings_are_checked(overrides, message):
    with pytest.raises(SmaError, match=message):
        load_config(overrides=overrides)


def seeded_loss(method, latents: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return method.loss(latents, text, torch.Generator().manual_seed(2))["loss"]


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory):
    from tiny_wan import build_wan

    return build_wan(tmp_path_factory.mktemp("wan"))


@pytest.mark.parametrize("method_name", ["tuneavideo", "motionlora"])
def test_a_budget_on_image_and_transformer_backbones_keeps_the_gradients(method_name, sd_dir, wan_dir):
    """SD-1.x inflated (UNet2D layers) and Wan (transformer blocks): the plan for the least memory recomputing can
    reach checkpoints what it must, and the trained parameters get the gradients of the plain loss."""
    folder = sd_dir if method_name == "tuneavideo" else wan_dir
    overrides = {"method": method_name, "model": str(folder), "sma.levels": 1, "video.frames": 9}
    config = load_config(overrides=overrides)
    results = []
    for budgeted in (False, True):
        method = build_method(config)
        torch.manual_seed(0)  # peft draws LoRA weights from the global generator
        parameters = list(method.prepare().values())
        model = method.model
        model.unet.train()
        latents = torch.randn(1, model.unet.config.in_channels, 3, 4, 4, generator=torch.Generator().manual_seed(1))
        text = model.encode_prompts(["a red circle"])

        loss = functools.partial(seeded_loss, method, latents, text)
        if budgeted:
            weights = [tensor for network in model.networks() for tensor in network.parameters()]
            measured, outside = measure_activations(model.checkpointable_layers(), loss, weights)
            least = estimate(0, outside, measured, set(measured))  # every layer recomputed
            plan = plan_checkpointing(least, 0, outside, measured)
            assert plan.fits and plan.checkpointed and plan.estimate_gib < plan.unplanned_gib
            # Wan's two blocks: one recomputed gives back its activations in backward, so it takes both
            assert len(plan.checkpointed) < plan.layers if method_name == "tuneavideo" else plan.layers == 2
            model.checkpoint_some_layers(plan.checkpointed)
        loss().backward()
        results.append(torch.cat([parameter.grad.flatten() for parameter in parameters]))
    assert results[0].abs().sum() > 0
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-7)
