"""Tune-A-Video and ControlVideo on tiny models in the Stable Diffusion 1.x and ControlNet layouts."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from safetensors.torch import load_file

from sma.backbones.hub import ModelNotFoundError
from sma.backbones.inflation import CrossFrameAttnProcessor, FrameCount
from sma.backbones.text_to_image import TextToImageModel
from sma.backbones.tiny import build_controlnet, build_text_to_image
from sma.cli import main
from sma.errors import SmaError
from sma.methods import build_method
from sma.recipes import load_config
from sma.runs import Adapter, generate, train
from sma.training import train as train_loop
from sma.video import read_video, write_video

SIZE = 32
FRAMES = 4


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return build_text_to_image(tmp_path_factory.mktemp("sd-tiny"))


@pytest.fixture(scope="module")
def controlnet_dir(tmp_path_factory):
    return build_controlnet(tmp_path_factory.mktemp("controlnet-tiny"))


@pytest.fixture(scope="module")
def depth_video(tmp_path_factory):
    """Depth-like frames: a vertical ramp (the floor) with a bright, near disc moving right, as png frames."""
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    frames = []
    for index in range(8):
        depth = 60 + 100 * rows / SIZE
        depth[(rows - 16) ** 2 + (columns - 6 - 3 * index) ** 2 < 25] = 250
        frames.append(np.repeat(depth[..., None], 3, axis=2).astype(np.uint8))
    return write_video(tmp_path_factory.mktemp("depth") / "frames", np.stack(frames))


def latents_of(frames, seed=0):
    return torch.randn(1, 4, frames, SIZE // 2, SIZE // 2, generator=torch.Generator().manual_seed(seed))


def per_frame(image_model, latents, t, text, controlnet=None, control=None):
    """The image model applied to each frame on its own (with ControlNet residuals when given)."""
    outputs = []
    for frame in range(latents.shape[2]):
        residuals = {}
        if controlnet is not None:
            down, mid = controlnet(
                latents[:, :, frame], t, text, controlnet_cond=control[:, :, frame], return_dict=False
            )
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        outputs.append(image_model(latents[:, :, frame], t, encoder_hidden_states=text, **residuals).sample)
    return torch.stack(outputs, dim=2)


@pytest.mark.parametrize("attention", [None, "sparse_causal", "key_frame"])
def test_inflated_model_starts_as_the_image_model(sd_dir, controlnet_dir, attention):
    model = TextToImageModel.from_pretrained(str(sd_dir), attention=attention, controlnet=str(controlnet_dir))
    image_model = UNet2DConditionModel.from_pretrained(sd_dir / "unet", use_safetensors=True).eval()
    controlnet = ControlNetModel.from_pretrained(controlnet_dir, use_safetensors=True).eval()
    text = model.encode_prompts(["a red circle"])
    t = torch.tensor([500])
    model.control = torch.rand(1, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        moving, static = latents_of(FRAMES), latents_of(1).expand(-1, -1, FRAMES, -1, -1)
        inflated = model.predict(moving, t, text)
        expected = per_frame(image_model, moving, t, text, controlnet, model.control)
        if attention is None:  # per-frame self-attention: every frame is the image model's
            torch.testing.assert_close(inflated, expected, rtol=1e-5, atol=1e-5)
        else:  # frame 0 attends to itself; later frames see other frames, unless all frames are the same
            torch.testing.assert_close(inflated[:, :, 0], expected[:, :, 0], rtol=1e-5, atol=1e-5)
            assert (inflated[:, :, 1:] - expected[:, :, 1:]).abs().max() > 1e-3
            model.control = model.control[:, :, :1].expand(-1, -1, FRAMES, -1, -1)
            static_expected = per_frame(image_model, static, t, text, controlnet, model.control)
            torch.testing.assert_close(model.predict(static, t, text), static_expected, rtol=1e-5, atol=1e-5)


def test_temporal_layers_are_in_the_forward_pass(sd_dir):
    """Once their zero output projections move, frames see each other through the temporal layers."""
    model = TextToImageModel.from_pretrained(str(sd_dir), attention=None)
    text, t, latents = model.encode_prompts(["x"]), torch.tensor([500]), latents_of(FRAMES)
    layers = [module for name, module in model.unet.named_modules() if name.endswith("temporal_transformer")]
    assert len(layers) == sum(isinstance(module, Transformer2DModel) for module in model.unet.modules()) == 4
    with torch.no_grad():
        for layer in layers:
            layer.proj_out.weight.normal_(std=0.5)
        changed = latents.clone()
        changed[:, :, 3] += 1
        before, after = model.predict(latents, t, text), model.predict(changed, t, text)
    assert ((after - before).abs().amax(dim=(0, 1, 3, 4)) > 1e-4).all()  # every frame sees frame 3


def attention_output(attention, video, sources):
    """Independent single-head reference: frame k's queries against the keys and values of its source frames."""
    outputs = []
    for k in range(video.shape[1]):
        query = attention.to_q(video[:, k])
        context = torch.cat([video[:, j] for j in sources[k]], dim=1)
        weights = torch.softmax(query @ attention.to_k(context).transpose(1, 2) / math.sqrt(query.shape[-1]), dim=-1)
        outputs.append(attention.to_out[0](weights @ attention.to_v(context)))
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize(
    "pattern, sources",
    [
        ("sparse_causal", lambda k: {0, max(k - 1, 0)}),
        ("key_frame", lambda k: {0}),
    ],
)
def test_each_frame_attends_only_to_its_source_frames(pattern, sources):
    frames, tokens, width = 5, 6, 8
    attention = Attention(
        query_dim=width, heads=1, dim_head=width, processor=CrossFrameAttnProcessor(pattern, FrameCount(frames))
    )
    video = torch.randn(2, frames, tokens, width)  # two videos in the folded batch
    with torch.no_grad():
        output = attention(video.flatten(0, 1)).unflatten(0, (2, frames))
        expected = attention_output(attention, video, [sorted(sources(k)) for k in range(frames)])
        torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-6)
        for changed_frame in range(frames):  # a frame's output moves only when its own or a source frame changes
            perturbed = video.clone()
            perturbed[:, changed_frame] += torch.randn(2, tokens, width)
            moved = (attention(perturbed.flatten(0, 1)).unflatten(0, (2, frames)) - output).abs().amax(dim=(0, 2, 3))
            for k in range(frames):
                assert (moved[k] > 1e-6) == (changed_frame in sources(k) | {k}), (changed_frame, k)


@pytest.mark.parametrize("attention, unchanged", [("sparse_causal", [0, 1]), ("key_frame", [0, 1, 3])])
def test_frames_see_only_what_the_pattern_allows_through_the_whole_unet(sd_dir, attention, unchanged):
    """With temporal layers at zero, changing frame 2 moves only frames that attend to it."""
    model = TextToImageModel.from_pretrained(str(sd_dir), attention=attention)
    text, t, latents = model.encode_prompts(["x"]), torch.tensor([500]), latents_of(FRAMES)
    changed = latents.clone()
    changed[:, :, 2] += 1
    with torch.no_grad():
        moved = (model.predict(changed, t, text) - model.predict(latents, t, text)).abs().amax(dim=(0, 1, 3, 4))
    assert [frame for frame in range(FRAMES) if moved[frame] < 1e-6] == unchanged
    spatial = [name for name, module in model.unet.named_modules() if isinstance(module, Attention)]
    for name in spatial:
        processor = model.unet.get_submodule(name).processor
        is_frame_attention = name.endswith("attn1") and "temporal_transformer" not in name
        assert isinstance(processor, CrossFrameAttnProcessor) == is_frame_attention, name


def test_missing_models_error(sd_dir, tmp_path):
    with pytest.raises(ModelNotFoundError, match="has no unet/ folder"):
        TextToImageModel.from_pretrained(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="cannot load"):
        TextToImageModel.from_pretrained(str(sd_dir), controlnet=str(tmp_path))
    with pytest.raises(SmaError, match="controlvideo needs the depth of the reference"):
        load_config(overrides={"method": "controlvideo"})


def tiny_config(sd_dir, controlnet_dir, depth_video, method, **overrides):
    values = {
        "method": method,
        "model": str(sd_dir),
        "prompt": "a red circle moving right",
        "targets": ["a blue square"],
        "video.frames": 8,
        "video.height": SIZE,
        "video.width": SIZE,
        "train.steps": 2,
        "train.checkpoint_every": 2,
        "generate.steps": 2,
        "generate.inversion_steps": 2,
    }
    if method == "controlvideo":
        values.update({"controlvideo.controlnet": str(controlnet_dir), "controlvideo.video": str(depth_video)})
    values.update(overrides)
    return load_config(overrides=values)


def snapshot(model):
    return {
        f"{prefix}.{name}": tensor.detach().clone()
        for prefix, network in model.denoisers().items()
        for name, tensor in network.state_dict().items()
    }


def expected_trained(name, module_types, method):
    if "temporal_transformer" in name:
        return True
    module_name, kind = name.rsplit(".", 1)[0], module_types[name.rsplit(".", 1)[0]]
    if method == "tuneavideo":
        return module_name.endswith(("attn1.to_q", "attn2.to_q"))
    return module_name.endswith("attn1.to_out.0") or kind in ("Conv2d", "GroupNorm", "LayerNorm")


@pytest.mark.parametrize("method_name", ["tuneavideo", "controlvideo"])
def test_only_the_intended_parameters_change(sd_dir, controlnet_dir, depth_video, method_name, tmp_path):
    config = tiny_config(sd_dir, controlnet_dir, depth_video, method_name, **{"train.learning_rate": 1e-2})
    method = build_method(config)
    model = method.model
    method.set_conditions(method.condition_on(torch.zeros(1, 3, 8, SIZE, SIZE)))
    before = snapshot(model)
    latents = model.encode_video(torch.rand(1, 3, 8, SIZE, SIZE) * 2 - 1)
    train_loop(Accelerator(), method, latents, model.encode_prompts([config.prompt]), config.train, 0, tmp_path)
    after = snapshot(model)
    module_types = {
        f"{prefix}.{name}": type(module).__name__
        for prefix, network in model.denoisers().items()
        for name, module in network.named_modules()
    }
    trained = set(method.adapter_state())
    assert trained == {name for name in before if expected_trained(name, module_types, method_name)}
    assert any("controlnet." in name for name in trained) == (method_name == "controlvideo")
    for name in before:
        if name not in trained:
            assert torch.equal(before[name], after[name]), name
    temporal_out = [name for name in trained if "temporal_transformer.proj_out.weight" in name]
    assert temporal_out and all(after[name].abs().sum() > 0 for name in temporal_out)  # left zero, now trained


@pytest.mark.parametrize("method_name", ["tuneavideo", "controlvideo"])
@pytest.mark.parametrize("use_sma", [True, False])
def test_transfer_command_end_to_end(sd_dir, controlnet_dir, depth_video, reference, tmp_path, method_name, use_sma):
    out = tmp_path / "run"
    arguments = ["transfer", str(reference), "--method", method_name, "--model", str(sd_dir), "--out", str(out)]
    arguments += ["--prompt", "a red circle", "--target", "a blue square"]
    arguments += ["--frames", "8", "--height", str(SIZE), "--width", str(SIZE), "--steps", "2", "--seed", "3"]
    if method_name == "controlvideo":
        arguments += ["--controlnet", str(controlnet_dir), "--control-video", str(depth_video)]
    arguments += [] if use_sma else ["--no-sma"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train: {checkpoint_every: 1}\ngenerate: {steps: 2, inversion_steps: 2}\n")
    assert main([*arguments, "--config", str(recipe)]) == 0
    for name in ("config.yaml", "reference.mp4", "comparison.mp4", "loss_curves.png", "metrics.json"):
        assert (out / name).is_file(), name
    video = out / "videos" / "00-a-blue-square.gif"
    assert read_video(video).shape == (8, SIZE, SIZE, 3)
    losses = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [record["step"] for record in losses] == [0, 1] and ("sma" in losses[0]) == use_sma
    about = json.loads((out / "adapter" / "adapter.json").read_text())
    assert about["method"] == method_name and about["sma"] == use_sma
    tensors = load_file(out / "adapter" / "adapter.safetensors")
    assert any("temporal_transformer" in name for name in tensors)
    adapter = Adapter.load(out / "adapter")
    if method_name == "controlvideo":  # the depth maps travel with the adapter, as read from the frames
        depth = adapter.conditions["depth"]
        assert depth.shape == (1, 3, 8, SIZE, SIZE)
        assert abs(depth[0, 0, 0, 16, 6].item() - 250 / 255) < 0.05 and depth[0, 0, 0, 0, 30] < 0.4
    else:
        assert adapter.conditions == {}

    # the saved adapter loads onto the base model and generates again, reproducibly
    again = generate(out / "adapter", ["a blue square"], tmp_path / "again", seed=3)
    assert (read_video(again[0].with_suffix(".gif")) == read_video(video)).all()


@pytest.mark.parametrize(
    "recipe, method, steps, learning_rate",
    [("tuneavideo-sd15", "tuneavideo", 500, 3e-5), ("controlvideo-sd15", "controlvideo", 300, 3e-5)],
)
def test_recipes_hold_the_papers_settings(recipe, method, steps, learning_rate):
    config = load_config(Path(__file__).parents[1] / "configs" / f"{recipe}.yaml")
    assert (config.method, config.train.steps, config.train.learning_rate) == (method, steps, learning_rate)
    assert (config.video.frames, config.generate.steps, config.generate.guidance_scale) == (8, 50, 12.5)
    assert config.model == "stable-diffusion-v1-5/stable-diffusion-v1-5" and config.sma.enabled


def test_resumed_and_checkpointed_training_reach_the_same_weights(
    sd_dir, controlnet_dir, depth_video, reference, tmp_path
):
    def run(name, steps, **options):
        config = tiny_config(sd_dir, controlnet_dir, depth_video, "tuneavideo", **{"train.steps": steps}, **options)
        return Adapter.load(
            train(config, reference, tmp_path / name, resume=(tmp_path / name).exists()) / "adapter"
        ).tensors

    straight = run("straight", 4)
    run("resumed", 2)
    resumed = run("resumed", 4)  # continues from the checkpoint at step 2
    checkpointed = run("checkpointed", 4, **{"train.gradient_checkpointing": True})
    for name in straight:
        # with 2 threads this model trains with run-to-run rounding noise (up to ~5e-8 seen in the
        # temporal layers), so equality is within that noise; VMC's resume test holds the bit-exact claim
        torch.testing.assert_close(straight[name], resumed[name], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(straight[name], checkpointed[name], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def depth_model_dir(tmp_path_factory):
    """A tiny Depth Anything (DINOv2 backbone) with its image processor, as on the Hub."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    folder = tmp_path_factory.mktemp("depth-anything-tiny")
    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=28,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=8,
        head_hidden_size=8,
    )
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    processor = DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=False, do_pad=False)
    processor.save_pretrained(folder)
    return folder


def test_depth_from_a_transformers_depth_model(sd_dir, controlnet_dir, depth_model_dir, reference, tmp_path, capsys):
    out = tmp_path / "run"
    arguments = ["train", str(reference), "--method", "controlvideo", "--model", str(sd_dir), "--out", str(out)]
    arguments += ["--frames", "8", "--height", str(SIZE), "--width", str(SIZE), "--steps", "1", "--prompt", "x"]
    arguments += ["--controlnet", str(controlnet_dir)]
    assert main([*arguments, "--depth-model", str(depth_model_dir)]) == 0
    depth = Adapter.load(out / "adapter").conditions["depth"]
    assert depth.shape == (1, 3, 8, SIZE, SIZE) and depth.min() >= 0
    assert torch.equal(depth[:, 0], depth[:, 2])  # grey depth maps on three channels
    torch.testing.assert_close(depth.amax(dim=(3, 4)), torch.ones(1, 3, 8))  # each frame scaled to its maximum
    assert depth.std() > 0
    capsys.readouterr()
    assert main([*arguments, "--depth-model", str(tmp_path / "no-depth-model"), "--overwrite"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("sma: error: no model folder at") and "depth-estimation model" in error


def test_controlvideo_generates_in_half_precision(sd_dir, controlnet_dir, depth_video, reference, tmp_path):
    run = train(tiny_config(sd_dir, controlnet_dir, depth_video, "controlvideo"), reference, tmp_path / "run")
    full = generate(run / "adapter", ["a blue square"], tmp_path / "fp32")
    half = generate(run / "adapter", ["a blue square"], tmp_path / "bf16", precision="bf16")
    difference = read_video(half[0]).astype(float) - read_video(full[0])
    assert 0 < abs(difference).mean() < 20  # the same video up to rounding of the weights
