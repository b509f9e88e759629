"""MotionDirector as its authors built it: where each LoRA goes, which loss trains it, what generates."""

import torch
from peft.tuners.lora import LoraLayer
from real_scale import lora_parameter_count, meta_text_to_video, motiondirector_official, zeroscope_unet

from sma.methods import build_method
from sma.methods.motiondirector import MotionDirector
from sma.recipes import load_config

SIZE = 16


def test_lora_targets_are_the_official_ones_at_real_scale():
    unet = zeroscope_unet()
    official = motiondirector_official(unet)
    ours = meta_text_to_video(unet).lora_targets()
    assert set(ours["spatial"]) == official["spatial"] and len(official["spatial"]) == 96
    assert set(ours["temporal"]) == official["temporal"] and len(official["temporal"]) == 170
    expected = {adapter: lora_parameter_count(unet, official[adapter]) for adapter in official}
    method = MotionDirector(meta_text_to_video(unet), load_config(overrides={"method": "motiondirector"}))
    trainable = method.prepare()
    for adapter, count in expected.items():
        assert sum(parameter.numel() for parameter in method.adapter_parameters(adapter)) == count, adapter
    assert sum(parameter.numel() for parameter in trainable.values()) == 8_785_920 + 12_472_320


def tiny_method(model_dir, **overrides) -> MotionDirector:
    values = {"method": "motiondirector", "model": str(model_dir), "video.frames": 8, "video.height": SIZE}
    values |= {"video.width": SIZE, "motiondirector.lora_rank": 4, **overrides}
    method = build_method(load_config(overrides=values))
    method.prepare()
    with torch.no_grad():  # LoRA B starts at zero; give every adapter an effect
        for name, parameter in method.trainable.items():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    return method


def test_both_adapters_are_active_and_each_changes_the_output(model_dir):
    method = tiny_method(model_dir)
    model = method.model
    for module in model.unet.modules():
        if isinstance(module, LoraLayer):
            assert module.active_adapters == list(module.lora_A), "every LoRA layer runs its own adapter"
    model.unet.eval()
    latents = torch.randn(1, 4, 8, SIZE // 2, SIZE // 2)
    text = model.encode_prompts(["a red circle"])
    t = torch.tensor([500])
    outputs = {}
    for spatial in (False, True):
        for temporal in (False, True):
            method.set_path(spatial=spatial, temporal=temporal)
            outputs[spatial, temporal] = model.predict(latents, t, text)
    assert not torch.allclose(outputs[True, False], outputs[False, False]), "the spatial LoRA acts"
    assert not torch.allclose(outputs[False, True], outputs[False, False]), "the temporal LoRA acts"


def test_each_lora_gets_gradient_only_from_its_own_loss(model_dir):
    method = tiny_method(model_dir, **{"motiondirector.spatial_dropout": 0.0, "motiondirector.lora_dropout": 0.0})
    model = method.model
    latents = torch.randn(1, 4, 8, SIZE // 2, SIZE // 2)
    text = model.encode_prompts(["a red circle"])
    terms = method.loss(latents, text, torch.Generator().manual_seed(1))
    assert {"spatial", "temporal", "sma", "loss"} <= terms.keys()
    spatial, temporal = method.adapter_parameters("spatial"), method.adapter_parameters("temporal")
    expected_spatial = torch.autograd.grad(terms["spatial"], spatial, retain_graph=True)
    expected_temporal = torch.autograd.grad(terms["temporal"] + terms["sma"], temporal, retain_graph=True)
    # the temporal loss does reach the spatial LoRA through the shared forward: routing is what keeps it out
    leaked = torch.autograd.grad(terms["temporal"], spatial, retain_graph=True, allow_unused=True)
    assert any(grad is not None and grad.abs().sum() > 0 for grad in leaked)
    groups = method.loss_groups(terms)
    for index, (loss, parameters) in enumerate(groups):
        loss.backward(inputs=parameters, retain_graph=index + 1 < len(groups))
    for parameter, expected in zip(spatial, expected_spatial, strict=True):
        torch.testing.assert_close(parameter.grad, expected, rtol=0, atol=0)
    for parameter, expected in zip(temporal, expected_temporal, strict=True):
        torch.testing.assert_close(parameter.grad, expected, rtol=0, atol=0)


def test_dropped_spatial_lora_skips_the_spatial_loss(model_dir):
    method = tiny_method(model_dir, **{"motiondirector.spatial_dropout": 0.999})
    model = method.model
    terms = method.loss(torch.randn(1, 4, 8, SIZE // 2, SIZE // 2), model.encode_prompts(["x"]), torch.Generator())
    assert "spatial" not in terms
    groups = method.loss_groups(terms)
    assert len(groups) == 1 and groups[0][1] == method.adapter_parameters("temporal")


def test_generation_runs_without_the_spatial_lora(model_dir):
    method = tiny_method(model_dir)
    model = method.model
    model.unet.eval()
    latents = torch.randn(1, 4, 8, SIZE // 2, SIZE // 2)
    text, t = model.encode_prompts(["a blue square"]), torch.tensor([300])
    method.prepare_generation()
    generating = model.predict(latents, t, text)
    for module in model.unet.modules():
        if isinstance(module, LoraLayer) and "spatial" in module.lora_A:
            module.delete_adapter("spatial")
    torch.testing.assert_close(generating, model.predict(latents, t, text), rtol=0, atol=0)


def test_lora_dropout_acts_on_the_lora_output_in_training_only(model_dir):
    method = tiny_method(model_dir, **{"motiondirector.lora_dropout": 0.5})
    layer = next(module for module in method.model.unet.modules() if isinstance(module, LoraLayer))
    adapter = next(iter(layer.lora_A))
    x = torch.randn(6, layer.in_features)
    assert not layer.lora_B[adapter].training, "a loaded model is in eval mode, its LoRA too"
    lora_output = layer.lora_B[adapter](layer.lora_A[adapter](x))
    layer.train()
    torch.manual_seed(0)
    dropped = layer(x) - layer.base_layer(x)
    assert (dropped == 0).float().mean() > 0.2  # whole output entries dropped, not input features
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], 2 * lora_output[kept])  # inverted dropout rescales by 1 / (1 - p)
    layer.eval()
    torch.testing.assert_close(layer(x) - layer.base_layer(x), lora_output)
