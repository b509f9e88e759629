"""Show-1 base: the UNet against the authors' class, loading in the Hub layout, VMC on it."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from safetensors.torch import load_file, save_file
from transformers import T5EncoderModel

from sma.backbones.dispatch import load_text_to_video
from sma.backbones.show1 import Show1Model
from sma.backbones.show1_unet import Show1UNet3DConditionModel
from sma.backbones.text_to_video import TextToVideoModel
from sma.errors import SmaError
from sma.methods import build_method
from sma.recipes import load_config
from sma.runs import generate, make_accelerator, train
from sma.training import train as train_loop
from sma.video import read_video
from tiny_models import build_text_to_video
from tiny_show1 import build_show1_base

DATA = Path(__file__).parent / "data"
SIZE = 16
PROMPT = "a red circle moving right"


def unet_settings(config: dict) -> dict:
    return {key: value for key, value in config.items() if not key.startswith("_")}


def test_unet_has_the_authors_parameter_names_and_shapes_at_real_size():
    recorded = json.loads((DATA / "show1_base_unet_state.json").read_text())
    with torch.device("meta"):
        unet = Show1UNet3DConditionModel(**unet_settings(recorded["config"]))
    shapes = {name: list(tensor.shape) for name, tensor in unet.state_dict().items()}
    assert shapes == recorded["parameters"]
    assert sum(tensor.numel() for tensor in unet.state_dict().values()) == recorded["parameter_count"]
    with torch.device("meta"):  # the authors' keyframe size, 8 x 40 x 64, goes through (40 / 8 = 5 at the bottom)
        output = unet(torch.empty(2, 3, 8, 40, 64), torch.tensor([10, 999]), torch.empty(2, 77, 4096)).sample
    assert output.shape == (2, 6, 8, 40, 64)


def test_unet_output_equals_the_authors_class_at_a_small_config():
    """Weights filled by name as when the reference was recorded from the authors' class."""
    recorded = json.loads((DATA / "show1_tiny_reference.json").read_text())
    unet = Show1UNet3DConditionModel(**recorded["config"])
    generator = torch.Generator().manual_seed(0)
    state = {name: torch.randn(t.shape, generator=generator) * 0.2 for name, t in sorted(unet.state_dict().items())}
    unet.load_state_dict(state, strict=True)
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(2, 3, 4, 8, 8, generator=generator)
    text = torch.randn(2, 6, 48, generator=generator)
    with torch.no_grad():
        output = unet.eval()(sample, torch.tensor(recorded["timesteps"]), encoder_hidden_states=text).sample
    expected = torch.tensor(recorded["output"])
    assert output.shape == expected.shape == (2, 6, 4, 8, 8)
    torch.testing.assert_close(output, expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"transfromer_in_opt": True}, "transfromer_in_opt=True"),
        ({"class_embed_type": "projection"}, "class_embed_type='projection'"),
        ({"layers_per_block": (1, 1, 1)}, "3 layers_per_block for 2 down blocks"),
        ({"down_block_types": ("CrossAttnDownBlock3D", "SimpleCrossAttnDownBlock3D")}, "CrossAttnDownBlock3D"),
    ],
)
def test_unet_refuses_settings_it_cannot_build(change, message):
    settings = {"block_out_channels": (32, 64), "attention_head_dim": 8, "layers_per_block": 1}
    settings |= {"down_block_types": ("ResnetDownsampleBlock3D", "SimpleCrossAttnDownBlock3D")}
    settings |= {"up_block_types": ("SimpleCrossAttnUpBlock3D", "ResnetUpsampleBlock3D")}
    with pytest.raises(ValueError, match=f"not a Show-1 UNet config.*{message}"):
        Show1UNet3DConditionModel(**settings | change)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_show1_base(tmp_path_factory.mktemp("show-1-base-tiny"), words=("red", "circle", "moving"))


def test_loads_in_the_hub_layout_through_the_dispatch(model_dir, tmp_path):
    model = load_text_to_video(str(model_dir))
    assert isinstance(model, Show1Model)
    assert isinstance(model.unet, Show1UNet3DConditionModel) and isinstance(model.text_encoder, T5EncoderModel)
    assert isinstance(model.scheduler, DPMSolverMultistepScheduler) and model.scheduler.config.thresholding
    assert model.size_multiple == 2 and model.latent_shape(8, SIZE, SIZE) == (1, 3, 8, SIZE, SIZE)
    pixels = torch.rand(1, 3, 8, SIZE, SIZE) * 2 - 1
    assert torch.equal(model.encode_video(pixels), pixels)  # pixel space: no VAE
    text = model.encode_prompts(["A Red circle ", ""])
    assert text.shape == (2, 77, 48)
    assert torch.equal(text[0], model.encode_prompts(["a red circle"])[0])  # lower-cased and stripped, as Show-1
    full = model.unet(pixels, torch.tensor([500]), encoder_hidden_states=text[:1]).sample
    predicted = model.predict(pixels, torch.tensor([500]), text[:1])
    assert full.shape[1] == 6 and torch.equal(predicted, full[:, :3])  # the learned variance is dropped
    assert all("temp_attentions" in name for name in model.temporal_attention_projections())

    model.release_text_encoder()
    assert model.text_encoder is None and model.encode_prompts([""]).shape == (1, 77, 48)
    with pytest.raises(SmaError, match="released before 'a blue square' was encoded"):
        model.encode_prompts(["a blue square"])

    zeroscope = build_text_to_video(tmp_path / "zeroscope")
    assert type(load_text_to_video(str(zeroscope))) is TextToVideoModel


def test_loading_is_strict(model_dir, tmp_path):
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    save_file({**load_file(weights), "mid_block.extra.weight": torch.zeros(2)}, weights)
    with pytest.raises(SmaError, match=r"1 unexpected keys \(e\.g\. 'mid_block\.extra\.weight'\)"):
        Show1Model.from_pretrained(str(broken))


def test_only_the_base_stage_is_supported(model_dir, tmp_path):
    interpolation = shutil.copytree(model_dir, tmp_path / "interpolation")
    index = json.loads((interpolation / "model_index.json").read_text())
    (interpolation / "model_index.json").write_text(json.dumps(index | {"_class_name": "TextToVideoIFInterpPipeline"}))
    with pytest.raises(SmaError, match="Show-1 TextToVideoIFInterpPipeline: the model is the base stage"):
        load_text_to_video(str(interpolation))


def tiny_config(model_dir, **overrides):
    values = {
        "method": "vmc",
        "model": str(model_dir),
        "prompt": PROMPT,
        "targets": ["a blue square"],
        "video.frames": 8,
        "video.height": SIZE,
        "video.width": SIZE,
        "train.steps": 2,
        "train.checkpoint_every": 1,
        "generate.steps": 2,
        "generate.inversion_steps": 2,
        "generate.sampler": "dpmsolver++",
    }
    return load_config(overrides=values | overrides)


def test_vmc_trains_exactly_the_temporal_attention_projections(model_dir, tmp_path):
    method = build_method(tiny_config(model_dir, **{"train.learning_rate": 1e-2}))
    model = method.model
    assert isinstance(model, Show1Model)
    before = {name: tensor.clone() for name, tensor in model.unet.state_dict().items()}
    pixels = model.encode_video(torch.rand(1, 3, 8, SIZE, SIZE) * 2 - 1)
    train_loop(
        make_accelerator(method.config),
        method,
        pixels,
        model.encode_prompts([PROMPT]),
        method.config.train,
        0,
        tmp_path,
    )
    trained = set(method.adapter_state())
    qkv = ("to_q", "to_k", "to_v")
    projections = {name for name in before if "temp_attentions" in name and name.split(".")[-2] in qkv}
    # temporal transformers: 1 down, 1 mid, 2 up; each with attn1 and attn2, q/k/v without bias
    assert trained == projections and len(trained) == 4 * 2 * 3
    for name, tensor in model.unet.state_dict().items():
        assert torch.equal(before[name], tensor) == (name not in trained), name


@pytest.mark.parametrize("sampler", ["dpmsolver++", "ddim"])
def test_vmc_with_sma_on_show1_trains_and_generates(model_dir, reference, tmp_path, sampler):
    run = train(tiny_config(model_dir, **{"generate.sampler": sampler}), reference, tmp_path / "run")
    losses = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [record["step"] for record in losses] == [0, 1] and all("sma" in record for record in losses)
    tensors = load_file(run / "adapter" / "adapter.safetensors")
    assert len(tensors) == 24 and all("temp_attentions" in name for name in tensors)
    videos = generate(run / "adapter", ["a blue square"], tmp_path / "out", seed=3)
    frames = read_video(videos[0])
    assert frames.shape == (8, SIZE, SIZE, 3) and frames.std() > 0


def test_recipe_follows_the_authors():
    config = load_config(Path(__file__).parents[1] / "configs" / "vmc-show1.yaml")
    assert (config.method, config.model) == ("vmc", "showlab/show-1-base")
    assert (config.video.frames, config.video.height, config.video.width) == (8, 40, 64)
    assert (config.train.learning_rate, config.train.steps, config.train.mixed_precision) == (1e-4, 500, "fp16")
    generation = config.generate
    assert (generation.sampler, generation.steps, generation.inversion_steps) == ("dpmsolver++", 75, 75)
    assert (generation.guidance_scale, generation.noise_prior, generation.negative_prompt) == (9.0, 1.0, "")
    assert (config.sma.global_weight, config.sma.local_weight, config.sma.levels) == (0.4, 0.2, 2)
