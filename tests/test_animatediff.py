"""AnimateDiff (SD-1.x + a MotionAdapter as diffusers' UNetMotionModel) with VMC and MotionDirector.

A tiny SD-1.x and a tiny MotionAdapter, each saved in its real layout and loaded by path; the
real-size trainable sets on the meta device, against the rules restated in real_scale.py.
"""

import json

import pytest
import torch
from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from real_scale import (
    animatediff_unet,
    lora_parameter_count,
    motiondirector_animatediff,
    parameter_count,
    vmc_animatediff,
)
from safetensors.torch import load_file

from sma.backbones.animatediff import AnimateDiffModel
from sma.backbones.dispatch import load_text_to_video
from sma.cli import main
from sma.errors import SmaError
from sma.methods import build_method
from sma.methods.motiondirector import MotionDirector
from sma.methods.vmc import VMC
from sma.recipes import load_config
from sma.runs import generate, make_accelerator
from sma.sampling import guided, make_scheduler, sample
from sma.training import train as train_loop
from sma.video import read_video
from tiny_models import build_motion_adapter

SIZE = 16
FRAMES = 8


@pytest.fixture(scope="module")
def motion_adapter(tmp_path_factory):
    return build_motion_adapter(tmp_path_factory.mktemp("motion-adapter-tiny"))


def tiny_config(sd_dir, motion_adapter, **overrides):
    values = {
        "model": str(sd_dir),
        "motion_adapter": str(motion_adapter),
        "prompt": "a red circle moving right",
        "video.frames": FRAMES,
        "video.height": SIZE,
        "video.width": SIZE,
        "train.steps": 2,
        "generate.steps": 2,
        "generate.inversion_steps": 2,
        "motiondirector.lora_rank": 4,
    }
    values |= overrides
    if values.get("method", "vmc") != "motiondirector":
        del values["motiondirector.lora_rank"]
    return load_config(overrides=values)


def test_loads_the_image_model_and_the_motion_modules_by_path(sd_dir, motion_adapter):
    model = load_text_to_video(str(sd_dir), motion_adapter=str(motion_adapter))
    assert type(model) is AnimateDiffModel and type(model.unet) is UNetMotionModel
    image = UNet2DConditionModel.from_pretrained(sd_dir, subfolder="unet").state_dict()
    adapter = MotionAdapter.from_pretrained(motion_adapter).state_dict()
    loaded = model.unet.state_dict()
    for name, tensor in loaded.items():
        if "motion_modules" in name:  # adapter: down_blocks.i.motion_modules.j..., mid_block.motion_modules.0...
            assert torch.equal(tensor, adapter[name]), name
        else:
            assert torch.equal(tensor, image[name]), name
    assert sum("motion_modules" in name for name in loaded) == len(adapter)
    # AnimateDiff's own scheduler: linear betas from 0.00085 to 0.012 (not SD's scaled-linear ones)
    torch.testing.assert_close(model.scheduler.betas, torch.linspace(0.00085, 0.012, 1000), rtol=0, atol=1e-9)


def test_sampling_matches_diffusers_animatediff_pipeline(sd_dir, motion_adapter):
    """Same start latents, prompt, cfg and DDIM steps as diffusers' AnimateDiffPipeline, which builds the
    motion UNet, repeats the text per frame and runs the scheduler by itself."""
    model = load_text_to_video(str(sd_dir), motion_adapter=str(motion_adapter))
    scheduler_kwargs = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear", "steps_offset": 1}
    pipeline = AnimateDiffPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=UNet2DConditionModel.from_pretrained(sd_dir, subfolder="unet"),
        motion_adapter=MotionAdapter.from_pretrained(motion_adapter),
        scheduler=DDIMScheduler(**scheduler_kwargs, clip_sample=False),
    )
    pipeline.set_progress_bar_config(disable=True)
    start = torch.randn(model.latent_shape(FRAMES, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
    prompt, steps, cfg = "a red circle", 3, 7.5
    expected = pipeline(
        prompt,
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        num_inference_steps=steps,
        guidance_scale=cfg,
        latents=start.clone(),
        output_type="latent",
    ).frames
    denoise = guided(model.predict, model.encode_prompts([prompt]), model.encode_prompts([""]), cfg)
    ours = sample(denoise, start, make_scheduler("ddim", model.scheduler.config), steps, progress=False)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_trainable_sets_follow_the_rules_in_the_tiny_model(sd_dir, motion_adapter):
    model = load_text_to_video(str(sd_dir), motion_adapter=str(motion_adapter))
    names = {f"{name}.weight" for name in model.temporal_attention_projections()}
    assert names == vmc_animatediff(model.unet) and len(names) == 42  # 7 motion modules (one in the mid block)
    targets = model.lora_targets()
    official = motiondirector_animatediff(model.unet)
    assert set(targets["spatial"]) == official["spatial"] and len(official["spatial"]) == 24
    assert set(targets["temporal"]) == official["temporal"] and len(official["temporal"]) == 70


def test_real_size_trainable_sets():
    """SD-1.5 + animatediff-motion-adapter-v1-5-3 on the meta device: what VMC and MotionDirector train."""
    unet = animatediff_unet()
    unet.requires_grad_(False)
    model = AnimateDiffModel(unet=unet, vae=None, text_encoder=None, tokenizer=None, scheduler=None, source="meta")
    vmc = VMC(model, load_config(overrides={"method": "vmc"})).prepare()
    assert set(vmc) == vmc_animatediff(unet) and len(vmc) == 120
    assert parameter_count(unet, set(vmc)) == 113_664_000  # 6 d^2 over the 20 motion modules
    assert all(parameter.requires_grad == (name in vmc) for name, parameter in unet.named_parameters())
    official = motiondirector_animatediff(unet)
    expected = {adapter: lora_parameter_count(unet, official[adapter]) for adapter in official}
    assert expected == {"spatial": 8_785_920, "temporal": 16_896_000}
    assert {adapter: len(layers) for adapter, layers in official.items()} == {"spatial": 96, "temporal": 200}
    model.unet = animatediff_unet().requires_grad_(False)  # MotionDirector on a fresh UNet, without VMC's changes
    method = MotionDirector(model, load_config(overrides={"method": "motiondirector"}))
    method.prepare()
    assert {adapter: set(layers) for adapter, layers in method.targets.items()} == official
    for adapter, count in expected.items():
        assert sum(parameter.numel() for parameter in method.adapter_parameters(adapter)) == count, adapter


def state(module):
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


@pytest.mark.parametrize("method_name", ["vmc", "motiondirector"])
def test_training_changes_only_the_intended_parameters_then_generates(sd_dir, motion_adapter, method_name, tmp_path):
    overrides = {"method": method_name, "train.learning_rate": 1e-2}
    if method_name == "motiondirector":
        overrides["motiondirector.spatial_dropout"] = 0.0  # both adapters train on both steps
    config = tiny_config(sd_dir, motion_adapter, **overrides)
    method = build_method(config)
    model = method.model
    before = state(model.unet)
    latents = model.encode_video(torch.rand(1, 3, FRAMES, SIZE, SIZE) * 2 - 1)
    text = model.encode_prompts([config.prompt])
    train_loop(make_accelerator(config), method, latents, text, config.train, 0, tmp_path)
    after = state(model.unet)
    if method_name == "vmc":
        trained = vmc_animatediff(model.unet)
        assert set(method.adapter_state()) == trained
        for name in before:
            assert torch.equal(before[name], after[name]) == (name not in trained), name
    else:
        base = {name.replace(".base_layer", ""): tensor for name, tensor in after.items() if "lora_" not in name}
        assert base.keys() == before.keys()
        assert all(torch.equal(before[name], base[name]) for name in before)
        for adapter in ("spatial", "temporal"):
            lora_b = {name: tensor for name, tensor in after.items() if f"lora_B.{adapter}." in name}
            layers = {name.split(".lora_B.")[0] for name in lora_b}
            assert layers == set(method.targets[adapter]), adapter
            assert all(tensor.abs().sum() > 0 for tensor in lora_b.values()), f"{adapter} LoRA B has moved"
    video = method.generate(latents, "a blue square", seed=0)
    assert video.shape == latents.shape and torch.isfinite(video).all()


def test_command_line_trains_and_the_adapter_generates_again(sd_dir, motion_adapter, reference, tmp_path):
    out = tmp_path / "run"
    arguments = ["transfer", str(reference), "--method", "motiondirector", "--model", str(sd_dir)]
    arguments += ["--motion-adapter", str(motion_adapter), "--out", str(out), "--prompt", "a red circle"]
    arguments += ["--target", "a blue square", "--frames", "8", "--height", "32", "--width", "32", "--steps", "2"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("generate: {steps: 2, inversion_steps: 2}\nmotiondirector: {lora_rank: 4}\n")
    assert main([*arguments, "--config", str(recipe)]) == 0
    about = json.loads((out / "adapter" / "adapter.json").read_text())
    assert about["config"]["motion_adapter"] == str(motion_adapter)
    tensors = load_file(out / "adapter" / "adapter.safetensors")
    assert any(".motion_modules." in name for name in tensors) and any(".attentions." in name for name in tensors)
    first = sorted((out / "videos").glob("*.gif"))[0]
    again = generate(out / "adapter", ["a blue square"], tmp_path / "again", seed=0)
    assert (read_video(again[0].with_suffix(".gif")) == read_video(first)).all()


def test_mistakes_are_named(sd_dir, motion_adapter, model_dir):
    with pytest.raises(SmaError, match=r"tuneavideo does not run on AnimateDiff .* leave `motion_adapter` empty"):
        load_config(overrides={"method": "tuneavideo", "motion_adapter": str(motion_adapter)})
    with pytest.raises(SmaError, match=r"is an image model .* set `motion_adapter`"):
        load_text_to_video(str(sd_dir))
    with pytest.raises(SmaError, match="has a UNet3DConditionModel: leave `motion_adapter` empty"):
        load_text_to_video(str(model_dir), motion_adapter=str(motion_adapter))
    with pytest.raises(SmaError, match="is a file: sma reads motion adapters in diffusers layout"):
        load_text_to_video(str(sd_dir), motion_adapter=str(motion_adapter / "config.json"))
    model = load_text_to_video(str(sd_dir), motion_adapter=str(motion_adapter))
    with pytest.raises(SmaError, match="at most 32 frames, got 33"):
        model.predict(torch.zeros(1, 4, 33, 8, 8), torch.tensor([1]), model.encode_prompts(["x"]))
