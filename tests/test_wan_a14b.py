"""Wan 2.2 A14B (two experts: `transformer` at high noise, `transformer_2` below `boundary_ratio`), text and image to
video, on tiny two-expert models of the real classes: sampling as diffusers' pipelines, motionlora per expert,
FlowMotion across the boundary, exports per expert."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import WanImageToVideoPipeline, WanPipeline
from diffusers.pipelines.wan import pipeline_wan_i2v
from PIL import Image
from real_scale import WAN22_I2V_A14B, WAN22_T2V_A14B, meta_wan, motionlora_official, wan_transformer
from safetensors import safe_open
from tiny_wan_i2v import build_wan_i2v_a14b

from sma.backbones.dispatch import text_to_video_class
from sma.backbones.latent_video import is_checkpointed
from sma.backbones.wan import HIGH_NOISE, LOW_NOISE
from sma.cli import main
from sma.errors import SmaError
from sma.methods import build_method
from sma.methods.motionlora import MotionLoRA
from sma.recipes import load_config
from sma.runs import load_trained, transfer
from sma.video import MovingObject, read_video, synthetic_video, write_video
from sma.video.image import read_image
from tiny_wan import build_wan_a14b

WORDS = ("a", "red", "blue", "circle", "square")
NEGATIVE = "static, gray"


@pytest.fixture(scope="module")
def t2v_folder(tmp_path_factory):
    return build_wan_a14b(tmp_path_factory.mktemp("t2v") / "model", words=WORDS)


@pytest.fixture(scope="module")
def i2v_folder(tmp_path_factory):
    return build_wan_i2v_a14b(tmp_path_factory.mktemp("i2v") / "model", words=WORDS)


@pytest.fixture(scope="module", params=["t2v", "i2v"])
def layout(request):
    return request.param, request.getfixturevalue(f"{request.param}_folder")


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("picture") / "picture.png"
    pixels = torch.linspace(0, 255, 3 * 24 * 20).reshape(24, 20, 3).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path)
    return path


def a14b_config(folder, method: str = "motionlora", **overrides):
    values = {"method": method, "model": str(folder), "video.frames": 9, "video.height": 16, "video.width": 16}
    values |= {"generate.steps": 4, "generate.guidance_scale": 5.0, "generate.guidance_scale_2": 2.0}
    values |= {"generate.negative_prompt": NEGATIVE, "sma.levels": 1, "targets": ["a blue square"]}
    if method == "motionlora":
        values |= {"generate.sampler": "unipc", "motionlora.sample_shift": 2.0}
    return load_config(overrides=values | overrides)


def test_sampling_equals_diffusers_pipelines_across_the_boundary(layout, picture, monkeypatch):
    """Same noise, prompts, image and settings: latents as WanPipeline's / WanImageToVideoPipeline's with both experts
    and `guidance_scale_2` (float32 on the CPU, 1e-4); the 4 steps at shift 2 cross the boundary (t 999 on the
    high-noise expert, the rest on the low-noise one), so a swapped expert or scale would show."""
    monkeypatch.setattr(pipeline_wan_i2v, "ftfy", SimpleNamespace(fix_text=lambda text: text), raising=False)
    name, folder = layout
    image = {"image": str(picture)} if name == "i2v" else {}
    method = build_method(a14b_config(folder, **image))
    model = method.model
    assert set(model.denoisers()) == {HIGH_NOISE, LOW_NOISE}
    assert model.boundary_timestep == (875.0 if name == "t2v" else 900.0)
    reference = torch.zeros(1, 4, 3, 2, 2)
    latents = method.generate(reference, "a blue square", seed=3)
    assert model.active == LOW_NOISE  # the last steps ran on the low-noise expert
    pipeline_class = WanPipeline if name == "t2v" else WanImageToVideoPipeline
    pipeline = pipeline_class.from_pretrained(folder)
    pipeline.scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config, flow_shift=2.0)
    options = {"prompt": "a blue square", "negative_prompt": NEGATIVE, "height": 16, "width": 16, "num_frames": 9}
    options |= {"num_inference_steps": 4, "guidance_scale": 5.0, "guidance_scale_2": 2.0}
    if name == "i2v":
        options["image"] = read_image(picture, 16, 16)[0]
    expected = pipeline(**options, latents=method.fresh_noise(reference, 3), output_type="latent").frames
    denoised = slice(1 if name == "i2v" else 0, None)  # I2V: sma gives frame 0 the image's own latent
    assert latents[:, :, denoised].abs().max() > 0.3
    torch.testing.assert_close(latents[:, :, denoised], expected[:, :, denoised], atol=1e-4, rtol=0)
    options["guidance_scale_2"] = 5.0  # the low-noise scale matters: the pipeline's other result differs
    other = pipeline(**options, latents=method.fresh_noise(reference, 3), output_type="latent").frames
    assert (other - expected)[:, :, denoised].abs().max() > 1e-3  # ten times the tolerance


def timesteps_seen(model) -> dict[str, list[float]]:
    """Each expert's timesteps of every forward, recorded by hooks (removed by the caller via `handles`)."""
    seen = {name: [] for name in model.denoisers()}
    model.handles = [
        expert.register_forward_pre_hook(
            lambda _m, _a, kwargs, name=name: seen[name].extend(kwargs["timestep"].flatten().tolist()),
            with_kwargs=True,
        )
        for name, expert in model.denoisers().items()
    ]
    return seen


@pytest.mark.parametrize("experts", ["high", "low", "both"])
def test_each_experts_lora_trains_on_its_own_timesteps(t2v_folder, experts):
    """Only the chosen experts get a LoRA (names behind their component); the loss runs each expert only at the
    timesteps it serves (t >= 875 for `transformer`), and only its LoRA gets a gradient."""
    method = build_method(a14b_config(t2v_folder, **{"motionlora.experts": experts, "motionlora.lora_rank": 2}))
    trainable = method.prepare()
    trained = {name.split(".")[0] for name in trainable}
    assert trained == {"high": {HIGH_NOISE}, "low": {LOW_NOISE}, "both": {HIGH_NOISE, LOW_NOISE}}[experts]
    assert len(trainable) == len(trained) * 2 * 8 * 2  # experts x blocks x attention projections x (A, B)
    model = method.model
    seen = timesteps_seen(model)
    text, latents = model.encode_prompts(["a red circle"]), torch.randn(1, 4, 3, 2, 2)
    for seed in range(12):
        model.unet.zero_grad(), model.unet_2.zero_grad()
        method.loss(latents, text, torch.Generator().manual_seed(seed))["loss"].backward()
        graded = {name.split(".")[0] for name, p in trainable.items() if p.grad is not None and p.grad.abs().sum()}
        assert len(graded) == 1 and graded <= trained
    for handle in model.handles:
        handle.remove()
    assert all(t >= 875 for t in seen[HIGH_NOISE]) and all(t < 875 for t in seen[LOW_NOISE])
    ran = {name for name, steps in seen.items() if steps}
    assert ran == trained  # with both, 12 draws at shift 3 reach both sides


def test_kept_noise_levels_have_the_shifted_distributions_shape():
    """shifted_sigmas_within(low, high) is shifted_sigmas conditioned on [low, high): their quartiles agree."""
    from sma.methods.motionlora import shifted_sigmas, shifted_sigmas_within

    everything = shifted_sigmas(200_000, 3.0, torch.Generator().manual_seed(0))
    quartiles = torch.tensor([0.25, 0.5, 0.75])
    for low, high in ((0.875, 1.0), (0.0, 0.875), (0.9, 1.0)):
        kept = shifted_sigmas_within(40_000, 3.0, low, high, torch.Generator().manual_seed(1))
        assert kept.min() >= low and kept.max() < high
        within = everything[(everything >= low) & (everything < high)]
        torch.testing.assert_close(kept.quantile(quartiles), within.quantile(quartiles), atol=4e-3, rtol=0)


def test_the_idle_expert_stays_off_the_accelerator_and_the_budget_counts_the_active_one(t2v_folder):
    """On the CPU the structure of it: the low-noise expert stands on the meta device (where nothing can run) while
    the high-noise LoRA trains and the memory planner plans; nothing moves it, the planner lists both experts among
    the model's networks but counts only the weights on the training device."""
    from sma.memory_budget import static_bytes

    method = build_method(a14b_config(t2v_folder, **{"motionlora.experts": "high", "motionlora.lora_rank": 2}))
    trainable = method.prepare()
    model = method.model
    model.unet_2.to("meta")
    text, latents = model.encode_prompts(["a red circle"]), torch.randn(1, 4, 3, 2, 2)
    for seed in range(3):
        method.loss(latents, text, torch.Generator().manual_seed(seed))["loss"].backward()
    assert {p.device.type for p in model.unet_2.parameters()} == {"meta"}
    assert any(network is model.unet_2 for network in model.networks())
    on_device = [network for network in model.networks() if network.device == model.device]
    weights = sum(p.nbytes for p in model.unet_2.parameters()) + sum(b.nbytes for b in model.unet_2.buffers())
    everything = static_bytes(model.networks(), trainable.values(), "adamw")
    assert static_bytes(on_device, trainable.values(), "adamw") == everything - weights
    model.checkpoint_some_layers([f"{HIGH_NOISE}.blocks.1"])  # a plan measured on one expert holds for both
    assert [is_checkpointed(expert.blocks[1]) for expert in (model.unet, model.unet_2)] == [True, True]
    assert not is_checkpointed(model.unet_2.blocks[0])


def test_sampling_swaps_the_experts_once_the_outgoing_one_first(t2v_folder, monkeypatch):
    """Across the boundary the high-noise expert leaves for the CPU before the low-noise one comes to the model's
    device, once per video: one expert's weights on the accelerator at a time."""
    method = build_method(a14b_config(t2v_folder))
    model, moves = method.model, []

    def recorded(name, move):
        return lambda *where: moves.append((name, *where)) or move(*where)

    for name, expert in model.denoisers().items():
        monkeypatch.setattr(expert, "to", recorded(name, expert.to))
    method.generate(torch.zeros(1, 4, 3, 2, 2), "a blue square", seed=0)
    assert moves == [(HIGH_NOISE, "cpu"), (LOW_NOISE, torch.device("cpu"))] and model.active == LOW_NOISE


def test_a_half_a14b_layout_gets_one_line(tmp_path):
    index = {"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"]}
    (tmp_path / "model_index.json").write_text(json.dumps(index | {"boundary_ratio": 0.875}))
    with pytest.raises(SmaError, match=r"Wan 2\.2 A14B layout only by half: it needs `transformer_2` and"):
        text_to_video_class(str(tmp_path), wan=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    clip = synthetic_video(MovingObject("circle", "red", "zigzag"), num_frames=9, height=16, width=16)
    return write_video(tmp_path_factory.mktemp("reference") / "reference.mp4", clip.frames)


def run_transfer(folder, reference, out, method="motionlora", steps=2, **overrides):
    values = {"prompt": "a red circle", "flowmotion.guidance_steps": 2}
    if method == "motionlora":
        values = {"prompt": "a red circle", "train.steps": steps, "train.checkpoint_every": steps}
        values |= {"train.learning_rate": 5e-2, "motionlora.lora_rank": 2}
    return transfer(a14b_config(folder, method, **values | overrides), reference, out)


@pytest.fixture(scope="module")
def both_run(t2v_folder, reference, tmp_path_factory):
    return run_transfer(t2v_folder, reference, tmp_path_factory.mktemp("both") / "run", steps=10)  # both experts drawn


def test_exports_load_into_both_experts_through_diffusers_own_loader(both_run, t2v_folder, tmp_path, capsys):
    """`sma export` writes a file per expert and says where each loads; WanPipeline.load_lora_weights(high) and
    (low, load_into_transformer_2=True), the same initial noise: the latents `sma generate` makes (1e-4)."""
    about = json.loads((both_run / "adapter" / "adapter.json").read_text())
    assert set(about["experts"]) == {HIGH_NOISE, LOW_NOISE}
    assert "load_into_transformer_2=True" in about["experts"][LOW_NOISE]["diffusers"]
    out = tmp_path / "skate.safetensors"
    assert main(["export", str(both_run), "--format", "diffusers", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    high, low = tmp_path / "skate-high_noise.safetensors", tmp_path / "skate-low_noise.safetensors"
    assert f"{low}: diffusers LoRA" in printed and "load_into_transformer_2=True" in printed and not out.exists()
    with safe_open(low, "pt") as handle:
        assert handle.metadata()["expert"] == LOW_NOISE
        assert all(key.startswith("transformer.blocks.") for key in handle.keys())  # noqa: SIM118 (safe_open is no dict)
    method, adapter = load_trained(both_run / "adapter")
    ours = method.generate(adapter.reference_latents, "a blue square", 0)
    start = method.fresh_noise(adapter.reference_latents, 0)
    pipeline = WanPipeline.from_pretrained(t2v_folder)
    pipeline.scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config, flow_shift=2.0)
    options = {"prompt": "a blue square", "negative_prompt": NEGATIVE, "height": 16, "width": 16, "num_frames": 9}
    options |= {"num_inference_steps": 4, "guidance_scale": 5.0, "guidance_scale_2": 2.0, "output_type": "latent"}
    without = pipeline(**options, latents=start.clone()).frames
    pipeline.load_lora_weights(str(high))
    only_high = pipeline(**options, latents=start.clone()).frames
    pipeline.load_lora_weights(str(low), load_into_transformer_2=True)
    theirs = pipeline(**options, latents=start.clone()).frames
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)
    assert (without - only_high).abs().max() > 1e-2 and (only_high - theirs).abs().max() > 1e-2  # both LoRAs act


def test_comfyui_files_name_each_experts_layers_as_the_original_model(both_run, tmp_path):
    """One ComfyUI file per expert, each in the original Wan names (a LoRA loader after each expert's model)."""
    from sma.export import export_adapter

    exports = export_adapter(both_run, "comfyui", tmp_path / "motion.safetensors")
    assert [(export.expert, export.path.name) for export in exports] == [
        (HIGH_NOISE, "motion-high_noise.safetensors"),
        (LOW_NOISE, "motion-low_noise.safetensors"),
    ]
    for export in exports:
        with safe_open(export.path, "pt") as handle:
            keys = set(handle.keys())
        assert "diffusion_model.blocks.1.cross_attn.o.lora_up.weight" in keys and len(keys) == 2 * 8 * 2


@pytest.mark.parametrize(
    ("name", "method", "overrides"),
    [
        ("t2v", "motionlora", {"motionlora.experts": "high"}),
        ("t2v", "motionlora", {"motionlora.experts": "low"}),
        ("i2v", "motionlora", {"motionlora.experts": "both"}),
        ("t2v", "flowmotion", {}),
        ("i2v", "flowmotion", {}),
    ],
)
def test_transfer_on_two_experts(request, picture, reference, tmp_path, name, method, overrides):
    """`sma transfer` end to end on the tiny A14B models: motionlora with each `experts` value, FlowMotion (guided
    steps on the high-noise expert, the rest across the boundary)."""
    folder = request.getfixturevalue(f"{name}_folder")
    image = {"image": str(picture)} if name == "i2v" else {}
    run = run_transfer(folder, reference, tmp_path / "run", method, **image, **overrides)
    assert len(read_video(run / "videos" / "00-a-blue-square.mp4")) == 9


@pytest.mark.parametrize(
    ("config", "boundary", "inject"), [(WAN22_T2V_A14B, 0.875, True), (WAN22_I2V_A14B, 0.9, False)]
)
def test_real_size_experts_train_what_the_trainers_train_under_their_names(config, boundary, inject):
    """Both experts at real size on the meta device (40 blocks of width 5120 each): the trainers' layer set (musubi-
    tuner's rule, feed-forward included as DiffSynth-Studio trains A14B) in each expert; `experts: low` makes it
    trainable in the low-noise expert alone, behind its component (peft on T2V only: 3 s), and each file's keys are
    the loaders'."""
    from sma.backbones.wan import WanModel
    from sma.export import by_expert, expert_path

    high, low = wan_transformer(config), wan_transformer(config)
    assert len(high.blocks) == 40 and high.blocks[0].attn1.to_q.in_features == 5120
    assert high.patch_embedding.in_channels == config["in_channels"] and high.config.image_dim is None
    overrides = {"method": "motionlora", "video.frames": 49, "motionlora.feed_forward": True, "motionlora.lora_rank": 1}

    def method(experts: str) -> MotionLoRA:
        settings = load_config(overrides=overrides | {"motionlora.experts": experts})
        return MotionLoRA(meta_wan(high, low, boundary), settings)

    official = motionlora_official(high, feed_forward=True)
    assert set(method("both").lora_targets()) == official and len(official) == 40 * 10
    assert method("high").trained_experts() == {HIGH_NOISE: high}
    assert method("low").trained_experts() == {LOW_NOISE: low}
    assert WanModel.diffusers_lora_keys("blocks.39.ffn.net.2")[0] == "transformer.blocks.39.ffn.net.2.lora_A.weight"
    comfyui = WanModel.comfyui_lora_keys("blocks.39.attn2.to_out.0")[1]
    assert comfyui == "diffusion_model.blocks.39.cross_attn.o.lora_up.weight"
    assert expert_path(Path("m.safetensors"), LOW_NOISE).name == "m-low_noise.safetensors"
    if not inject:
        return
    trainable = method("low").prepare()
    layers = sorted({name.partition(".lora_")[0] for name in trainable})
    assert list(by_expert(layers)) == [LOW_NOISE]
    assert {name.removeprefix(f"{LOW_NOISE}.") for name in layers} == official
    names = {f"{LOW_NOISE}.{name}" for name, p in low.named_parameters() if p.requires_grad}
    assert names == set(trainable) and not any(p.requires_grad for p in high.parameters())
