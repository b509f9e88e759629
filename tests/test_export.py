"""`sma export`: the LoRA files diffusers and ComfyUI load, checked against their own loaders.

Tiny models of the real classes, trained for two steps by `sma.runs.train` into real run
folders. diffusers' own pipelines sample with the exported LoRA from the start `sma generate`
samples from; ComfyUI's keys are checked against AnimateDiff's original motion-module layout,
written here from guoyww/AnimateDiff's animatediff/models/motion_module.py and unet.py.
"""

import json
import pathlib
import re

import pytest
import torch
from diffusers import (
    AnimateDiffPipeline,
    DDIMScheduler,
    MotionAdapter,
    TextToVideoSDPipeline,
    UNetMotionModel,
    WanPipeline,
    WanTransformer3DModel,
)
from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_wan_lora_to_diffusers
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from real_scale import ANIMATEDIFF_V153_ADAPTER, sd15_unet
from safetensors import safe_open
from safetensors.torch import load_file

from sma.backbones.animatediff import AnimateDiffModel
from sma.backbones.text_to_video import TextToVideoModel
from sma.backbones.wan import WanModel
from sma.cli import main
from sma.errors import SmaError
from sma.export import export_adapter, low_rank
from sma.recipes import load_config
from sma.runs import load_trained, train
from sma.video import MovingObject, synthetic_video, write_video
from tiny_models import build_motion_adapter
from tiny_wan import build_wan

FRAMES, SIZE, SEED, TARGET = 8, 16, 3, "a blue square"
# Equality of the sampled latents: float32 sums in another order (a LoRA beside the weight instead of
# inside it); the LoRA moves the latents by more than 1e-2 (checked below).
TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


def run_folder(tmp_path_factory, reference, method, model, motion_adapter=None):
    values = {
        "method": method,
        "model": str(model),
        "prompt": "a red circle moving right",
        "video.frames": FRAMES,
        "video.height": SIZE,
        "video.width": SIZE,
        "train.steps": 2,
        "train.learning_rate": 1e-2,  # large, so that two steps move the weights visibly
        "generate.steps": 3,
        "generate.inversion_steps": 3,
        "generate.noise_prior": 0.5,  # the start mixes the inverted reference and the seed's noise
    }
    if motion_adapter is not None:
        values["motion_adapter"] = str(motion_adapter)
    if method == "motiondirector":
        values |= {"motiondirector.lora_rank": 4, "motiondirector.spatial_dropout": 0.0}
    out = tmp_path_factory.mktemp(f"{method}-run") / "run"
    return train(load_config(overrides=values), reference, out)


@pytest.fixture(scope="module")
def motion_adapter(tmp_path_factory):
    return build_motion_adapter(tmp_path_factory.mktemp("motion-adapter-tiny"))


@pytest.fixture(scope="module")
def animatediff_runs(tmp_path_factory, reference, sd_dir, motion_adapter):
    return {
        method: run_folder(tmp_path_factory, reference, method, sd_dir, motion_adapter)
        for method in ("vmc", "motiondirector")
    }


@pytest.fixture(scope="module")
def zeroscope_runs(tmp_path_factory, reference, model_dir):
    return {method: run_folder(tmp_path_factory, reference, method, model_dir) for method in ("vmc", "motiondirector")}


def sma_video_and_start(run):
    """What `sma generate` samples for TARGET at SEED, and the latents its sampling starts from."""
    method, adapter = load_trained(run / "adapter")
    reference = adapter.reference_latents
    video = method.generate(reference, TARGET, SEED)
    inverted = method.invert(reference, method.inversion_prompt())
    start = method.initial_latents(inverted, method.fresh_noise(reference, SEED))
    return video, start, adapter.config


def pipeline_video(pipeline, config, start) -> torch.Tensor:
    pipeline.set_progress_bar_config(disable=True)
    settings = config.generate
    return pipeline(
        TARGET,
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        negative_prompt=settings.negative_prompt,
        latents=start.clone(),
        output_type="latent",
    ).frames


def animatediff_pipeline(sd_dir, motion_adapter) -> AnimateDiffPipeline:
    """As diffusers' AnimateDiff docs build it: the SD folder, the MotionAdapter, AnimateDiff's DDIM schedule."""
    pipeline = AnimateDiffPipeline.from_pretrained(sd_dir, motion_adapter=MotionAdapter.from_pretrained(motion_adapter))
    linear = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear", "steps_offset": 1}
    pipeline.scheduler = DDIMScheduler(**linear, clip_sample=False)
    return pipeline


@pytest.mark.parametrize("method", ["vmc", "motiondirector"])
def test_diffusers_animatediff_pipeline_with_the_lora_samples_what_sma_generates(
    method, animatediff_runs, sd_dir, motion_adapter, tmp_path
):
    run = animatediff_runs[method]
    ours, start, config = sma_video_and_start(run)
    path = tmp_path / "lora.safetensors"
    assert main(["export", str(run), "--format", "diffusers", "--out", str(path)]) == 0
    pipeline = animatediff_pipeline(sd_dir, motion_adapter)
    without = pipeline_video(pipeline, config, start)
    pipeline.load_lora_weights(str(path))
    theirs = pipeline_video(pipeline, config, start)
    torch.testing.assert_close(theirs, ours, **TOLERANCE)
    assert (without - ours).abs().max() > 1e-2  # the LoRA is what makes them equal


@pytest.mark.parametrize("method", ["vmc", "motiondirector"])
def test_zeroscope_lora_folded_into_diffusers_text_to_video_pipeline_samples_what_sma_generates(
    method, zeroscope_runs, model_dir, tmp_path
):
    """diffusers >= 0.31 loads no LoRA into UNet3DConditionModel (it lacks PeftAdapterMixin), so docs/export.md
    folds each pair into its layer, `W += up @ down`: what this test does."""
    run = zeroscope_runs[method]
    ours, start, config = sma_video_and_start(run)
    path = tmp_path / "lora.safetensors"
    export_adapter(run, "diffusers", path)
    pipeline = TextToVideoSDPipeline.from_pretrained(model_dir)
    without = pipeline_video(pipeline, config, start)
    lora, layers = load_file(path), dict(pipeline.unet.named_modules())  # docs/export.md's lines
    for key, down in lora.items():
        if key.endswith(".lora_A.weight"):
            layer = layers[key.removeprefix("unet.").removesuffix(".lora_A.weight")]
            layer.weight.data += (lora[key.replace(".lora_A.", ".lora_B.")] @ down).to(layer.weight)
    theirs = pipeline_video(pipeline, config, start)
    torch.testing.assert_close(theirs, ours, **TOLERANCE)
    assert (without - ours).abs().max() > 1e-2


def test_metadata_names_what_the_lora_is(animatediff_runs, motion_adapter, sd_dir, tmp_path):
    path = export_adapter(animatediff_runs["motiondirector"], "comfyui", tmp_path / "motion.safetensors")[0].path
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    assert metadata["rank"] == metadata["alpha"] == "4"
    assert metadata["method"] == "motiondirector" and metadata["lora_format"] == "comfyui"
    assert metadata["base_model"] == str(sd_dir) and metadata["motion_adapter"] == str(motion_adapter)
    assert '"enabled": true' in metadata["sma"] and metadata["sma_version"]
    assert metadata["layers"] == "70"  # the temporal LoRA only: 7 motion modules x (2 attentions x 4 + 2 ff)


# --- AnimateDiff's own motion-module layout (guoyww/AnimateDiff), as ComfyUI-AnimateDiff-Evolved loads it ---


def original_motion_module_keys(levels: int, layers_per_block: int, mid_block: bool) -> set[str]:
    """Every weight name of an AnimateDiff motion-module checkpoint (mm_sd_v15_v2.ckpt naming), but the
    positional encodings: unet.py puts a motion module after each of the `layers_per_block` layers of every
    down block, the `layers_per_block + 1` of every up block, and (v2) one in the mid block; each is a
    VanillaTemporalModule: `temporal_transformer` (GroupNorm `norm`, `proj_in`, one TemporalTransformerBlock,
    `proj_out`); the block: `attention_blocks` 0 and 1 (CrossAttention: to_q, to_k, to_v without bias,
    to_out = [Linear, Dropout]), their LayerNorms `norms` 0 and 1, FeedForward `ff` (GEGLU `net.0.proj`,
    `net.2`) and `ff_norm`."""
    places = [f"down_blocks.{i}.motion_modules.{j}" for i in range(levels) for j in range(layers_per_block)]
    places += [f"up_blocks.{i}.motion_modules.{j}" for i in range(levels) for j in range(layers_per_block + 1)]
    places += ["mid_block.motion_modules.0"] if mid_block else []
    block = "temporal_transformer.transformer_blocks.0"
    inner = ["temporal_transformer.norm", "temporal_transformer.proj_in", "temporal_transformer.proj_out"]
    inner += [f"{block}.ff.net.0.proj", f"{block}.ff.net.2", f"{block}.ff_norm"]
    for attention in (0, 1):
        inner += [f"{block}.norms.{attention}", f"{block}.attention_blocks.{attention}.to_out.0"]
    keys = {f"{place}.{name}.{kind}" for place in places for name in inner for kind in ("weight", "bias")}
    projections = [f"{block}.attention_blocks.{a}.to_{p}.weight" for a in (0, 1) for p in "qkv"]
    return keys | {f"{place}.{name}" for place in places for name in projections}


def evolved_model_key(key: str) -> str:
    """ComfyUI-AnimateDiff-Evolved's load_motion_lora_as_patches: the motion-model weight a LoRA down key patches."""
    model_key = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("up.", "")
    return model_key if "to_out.0." in model_key else model_key.replace("to_out.", "to_out.0.")


def evolved_patches(lora: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Its patches: keys without "temporal" dropped, each down key's weight change `up @ down` (strength 1)."""
    lora = {key: tensor for key, tensor in lora.items() if "temporal" in key}
    return {
        evolved_model_key(key): lora[key.replace(".down.", ".up.")] @ tensor
        for key, tensor in lora.items()
        if "up." not in key
    }


def original_loader_model_key(key: str) -> str:
    """guoyww/AnimateDiff's load_diffusers_lora (convert_lora_safetensor_to_diffusers.py), the same for a down key."""
    model_key = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("up.", "")
    return model_key.replace("to_out.", "to_out.0.")


ATTENTION_PROJECTIONS = re.compile(r".*attention_blocks\.[01]\.to_[qkv]\.weight")
TEMPORAL_LORA_LAYERS = re.compile(r".*(attention_blocks\.[01]\.(to_[qkv]|to_out\.0)|ff\.net\.(0\.proj|2))\.weight")


@pytest.mark.parametrize("method", ["vmc", "motiondirector"])
def test_comfyui_keys_map_one_to_one_onto_the_original_motion_module(method, animatediff_runs, tmp_path):
    path = export_adapter(animatediff_runs[method], "comfyui", tmp_path / "motion.safetensors")[0].path
    lora = load_file(path)
    downs = [key for key in lora if key.endswith(".down.weight")]
    assert len(downs) * 2 == len(lora) and all(key.replace(".down.", ".up.") in lora for key in downs)
    assert all("temporal" in key for key in lora)  # AnimateDiff-Evolved drops keys without it
    original = original_motion_module_keys(levels=2, layers_per_block=1, mid_block=True)  # the tiny adapter
    patched = [evolved_model_key(key) for key in downs]
    assert len(set(patched)) == len(patched) and set(patched) <= original
    rule = ATTENTION_PROJECTIONS if method == "vmc" else TEMPORAL_LORA_LAYERS
    assert set(patched) == {key for key in original if rule.fullmatch(key)}
    assert [original_loader_model_key(key) for key in downs] == patched


def diffusers_motion_name(original: str) -> str:
    """The MotionAdapter name of an original motion-module weight: diffusers' conversion renames
    (scripts/convert_animatediff_motion_module_to_diffusers.py)."""
    renames = {".temporal_transformer": "", ".attention_blocks.0": ".attn1", ".attention_blocks.1": ".attn2"}
    renames |= {".norms.0": ".norm1", ".norms.1": ".norm2", ".ff_norm": ".norm3"}
    for old, new in renames.items():
        original = original.replace(old, new)
    return original


@pytest.mark.parametrize("method_name", ["vmc", "motiondirector"])
def test_comfyui_patches_give_the_trained_motion_modules(
    method_name, animatediff_runs, sd_dir, motion_adapter, tmp_path
):
    """AnimateDiff-Evolved's patches at strength 1 on the pretrained motion modules give the UNet that
    `sma generate` runs (the scale is in the file, as the loader applies none)."""
    run = animatediff_runs[method_name]
    path = export_adapter(run, "comfyui", tmp_path / "motion.safetensors")[0].path
    method, _ = load_trained(run / "adapter")
    method.prepare_generation()
    latents = torch.randn(1, 4, FRAMES, 4, 4)
    text = method.model.encode_prompts([TARGET])
    timestep = torch.tensor([500])
    ours = method.model.predict(latents, timestep, text)

    def motion_unet_output(adapter: MotionAdapter) -> torch.Tensor:
        unet = AnimateDiffPipeline.from_pretrained(sd_dir, motion_adapter=adapter).unet
        return unet(latents, timestep, encoder_hidden_states=text.repeat_interleave(FRAMES, dim=0)).sample

    adapter = MotionAdapter.from_pretrained(motion_adapter)
    without = motion_unet_output(adapter)
    weights = adapter.state_dict()
    for key, change in evolved_patches(load_file(path)).items():
        weights[diffusers_motion_name(key)] += change
    adapter.load_state_dict(weights)
    torch.testing.assert_close(motion_unet_output(adapter), ours, rtol=1e-4, atol=1e-5)
    assert (without - ours).abs().max() > 1e-2


def test_comfyui_keys_at_real_size_are_those_of_mm_sd_v15_v2():
    """SD-1.5 with a v2-layout motion adapter (mid block), on the meta device: VMC's 126 q/k/v and
    MotionDirector's 210 temporal layers land on distinct weights of the original checkpoint."""
    with torch.device("meta"):
        adapter = MotionAdapter.from_config({**ANIMATEDIFF_V153_ADAPTER, "use_motion_mid_block": True})
        unet = UNetMotionModel.from_unet2d(sd15_unet(), adapter, load_weights=False)
    model = AnimateDiffModel(unet=unet, vae=None, text_encoder=None, tokenizer=None, scheduler=None, source="meta")
    original = original_motion_module_keys(levels=4, layers_per_block=2, mid_block=True)
    layer_sets = {"vmc": model.temporal_attention_projections(), "motiondirector": model.lora_targets()["temporal"]}
    for method, rule in (("vmc", ATTENTION_PROJECTIONS), ("motiondirector", TEMPORAL_LORA_LAYERS)):
        patched = [evolved_model_key(AnimateDiffModel.comfyui_lora_keys(layer)[0]) for layer in layer_sets[method]]
        assert len(set(patched)) == len(patched) == {"vmc": 126, "motiondirector": 210}[method]
        assert set(patched) == {key for key in original if rule.fullmatch(key)}, method


def test_low_rank_error_is_eckart_young():
    """Truncated to rank r, the relative error is the norm of the dropped singular values over all of them."""
    change = torch.randn(24, 16, dtype=torch.float64)
    singular = torch.linalg.svdvals(change)
    for rank in (1, 5, 16):
        factors = low_rank(change, rank)
        assert factors.rank == rank
        expected = singular[rank:].square().sum().sqrt() / singular.square().sum().sqrt()
        assert factors.relative_error == pytest.approx(float(expected), abs=1e-6)
    full = low_rank(change)
    assert full.rank == 16 and full.relative_error < 1e-6
    torch.testing.assert_close(full.up.double() @ full.down.double(), change, rtol=0, atol=1e-5)


def test_vmc_rank_truncates_and_reports_the_measured_error(animatediff_runs, tmp_path, capsys):
    path = tmp_path / "vmc-r2.safetensors"
    arguments = [str(animatediff_runs["vmc"]), "--format", "diffusers", "--out", str(path), "--rank", "2"]
    assert main(["export", *arguments]) == 0
    printed = capsys.readouterr().out
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    ranks = {tensor.shape[0] for key, tensor in load_file(path).items() if ".lora_A." in key}
    assert ranks == {2} and metadata["svd_rank"] == "2" and metadata["rank"] == "2"
    assert 0 < float(metadata["svd_relative_error_max"]) < 1
    assert f"max {metadata['svd_relative_error_max']}" in printed


def test_mistakes_are_one_line_errors(animatediff_runs, zeroscope_runs, tmp_path, capsys):
    out = tmp_path / "lora.safetensors"
    run = animatediff_runs["motiondirector"]
    cases = [
        ([str(tmp_path / "missing"), "--format", "diffusers"], "does not exist"),
        ([str(tmp_path), "--format", "diffusers"], "neither an adapter folder"),
        ([str(zeroscope_runs["vmc"]), "--format", "comfyui"], "ComfyUI has no loader for ZeroScope"),
        ([str(run), "--format", "diffusers", "--rank", "2"], "--rank >= 1 truncates a vmc adapter"),
    ]
    for arguments, message in cases:
        assert main(["export", *arguments, "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
    assert main(["export", str(run), "--format", "diffusers", "--out", str(tmp_path / "lora.pt")]) == 2
    assert ".safetensors file" in capsys.readouterr().err
    assert not out.exists()
    out.write_bytes(b"keep")
    assert main(["export", str(run), "--format", "diffusers", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == b"keep"
    assert main(["export", str(run / "adapter"), "--format", "diffusers", "--out", str(out), "--overwrite"]) == 0
    assert len(load_file(out)) == 2 * 70
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("method: vmc\n")
    assert main(["export", str(unfinished), "--format", "diffusers", "--out", str(out), "--overwrite"]) == 2
    assert "has no adapter yet" in capsys.readouterr().err


def test_backbones_name_their_keys():
    layer = "up_blocks.1.motion_modules.2.transformer_blocks.0.attn2.to_out.0"
    assert AnimateDiffModel.diffusers_lora_keys(layer) == (f"unet.{layer}.lora_A.weight", f"unet.{layer}.lora_B.weight")
    down, up = AnimateDiffModel.comfyui_lora_keys(layer)
    assert down == (
        "up_blocks.1.motion_modules.2.temporal_transformer.transformer_blocks.0.attention_blocks.1.processor."
        "to_out_lora.down.weight"
    )
    assert up == down.replace(".down.", ".up.")
    with pytest.raises(SmaError, match="not in a motion module"):
        AnimateDiffModel.comfyui_lora_keys("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q")
    with pytest.raises(SmaError, match="ComfyUI has no loader"):
        TextToVideoModel.comfyui_lora_keys("down_blocks.0.temp_attentions.0.transformer_blocks.0.attn1.to_q")


# --- Wan 2.1 (motionlora): WanPipeline's own LoRA loader; ComfyUI's Wan layout, the original model's names ---

WAN_WORDS = ("a", "red", "blue", "circle", "square")
WAN_NEGATIVE = "static, blurred"
WAN_SIZE, WAN_FRAMES = 32, 9
WAN_RANK, WAN_ALPHA = 2, 8.0  # scale alpha / rank = 4: the export must fold it in


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
    return build_wan(tmp_path_factory.mktemp("wan") / "model", words=WAN_WORDS)


@pytest.fixture(scope="module")
def wan_run(tmp_path_factory, wan_folder):
    """motionlora with appearance debiasing and feed-forward LoRA, two steps at a large learning rate."""
    folder = tmp_path_factory.mktemp("motionlora-run")
    clip = synthetic_video(MovingObject("circle", "red", "zigzag"), num_frames=12, height=WAN_SIZE, width=WAN_SIZE)
    reference = write_video(folder / "reference.mp4", clip.frames)
    values = {"method": "motionlora", "model": str(wan_folder), "prompt": "a red circle", "sma.levels": 1}
    values |= {"video.frames": WAN_FRAMES, "video.height": WAN_SIZE, "video.width": WAN_SIZE}
    values |= {"train.steps": 2, "train.learning_rate": 5e-2}
    values |= {"generate.sampler": "unipc", "generate.steps": 4, "generate.negative_prompt": WAN_NEGATIVE}
    values |= {"motionlora.lora_rank": WAN_RANK, "motionlora.lora_alpha": WAN_ALPHA, "motionlora.feed_forward": True}
    values |= {"motionlora.appearance_debiasing": True, "motionlora.appearance_dropout": 0.0}
    return train(load_config(overrides=values), reference, folder / "run")


def wan_pipeline_video(pipeline, config, start, output_type="latent") -> torch.Tensor:
    pipeline.set_progress_bar_config(disable=True)
    settings = config.generate
    return pipeline(
        TARGET,
        negative_prompt=settings.negative_prompt,
        num_frames=WAN_FRAMES,
        height=WAN_SIZE,
        width=WAN_SIZE,
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        latents=start.clone(),
        output_type=output_type,
    ).frames


def test_diffusers_wan_pipeline_with_the_lora_samples_what_sma_generates(wan_run, wan_folder, tmp_path):
    """WanPipeline.load_lora_weights(FILE), the same initial noise: the latents and the frames `sma generate` makes
    (1e-4 absolute: sma batches the guided passes and runs the LoRA beside each weight in another order)."""
    method, adapter = load_trained(wan_run / "adapter")
    ours = method.generate(adapter.reference_latents, TARGET, SEED)
    start = method.fresh_noise(adapter.reference_latents, SEED)  # what `generate` starts from
    path = tmp_path / "wan.safetensors"
    assert main(["export", str(wan_run), "--format", "diffusers", "--out", str(path)]) == 0
    pipeline = WanPipeline.from_pretrained(wan_folder)  # UniPC with flow shift 3.0: motionlora.sample_shift
    without = wan_pipeline_video(pipeline, adapter.config, start)
    pipeline.load_lora_weights(str(path))
    theirs = wan_pipeline_video(pipeline, adapter.config, start)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)
    assert (without - ours).abs().max() > 1e-2  # the LoRA is what makes them equal
    frames = wan_pipeline_video(pipeline, adapter.config, start, output_type="pt")  # (b, f, 3, h, w) in [0, 1]
    decoded = (method.model.decode_latents(ours).permute(0, 2, 1, 3, 4) + 1) / 2
    torch.testing.assert_close(frames, decoded, atol=1e-4, rtol=0)


def original_wan_lora_layers(blocks: int) -> set[str]:
    """The Linear layers of Wan 2.1's original transformer blocks that motionlora trains (with feed_forward), as
    Wan-Video/Wan2.1 wan/modules/model.py names them: WanAttentionBlock's `self_attn` and `cross_attn`
    (WanSelfAttention, WanT2VCrossAttention: Linear q, k, v, o) and `ffn` = Sequential(Linear, GELU, Linear)."""
    attention = [f"{kind}.{projection}" for kind in ("self_attn", "cross_attn") for projection in "qkvo"]
    return {f"blocks.{block}.{name}" for block in range(blocks) for name in [*attention, "ffn.0", "ffn.2"]}


def test_comfyui_wan_keys_are_the_original_model_names_diffusers_converts_back(wan_run, tmp_path):
    """The ComfyUI file names every trained layer once, in the original model's names behind `diffusion_model.`
    (ComfyUI's own keys for a Wan checkpoint); diffusers' converter for such LoRAs, independent of the exporter,
    turns it into exactly the diffusers export: the same keys and tensors (no alpha keys: scale 1 in both)."""
    comfy = export_adapter(wan_run, "comfyui", tmp_path / "comfy.safetensors")[0].path
    diffusers = export_adapter(wan_run, "diffusers", tmp_path / "diffusers.safetensors")[0].path
    lora = load_file(comfy)
    downs = [key for key in lora if key.endswith(".lora_down.weight")]
    assert len(downs) * 2 == len(lora) and all(key.replace(".lora_down.", ".lora_up.") in lora for key in downs)
    layers = [key.removeprefix("diffusion_model.").removesuffix(".lora_down.weight") for key in downs]
    assert all(key.startswith("diffusion_model.") for key in lora)
    assert len(set(layers)) == len(layers) and set(layers) == original_wan_lora_layers(blocks=2)
    converted = _convert_non_diffusers_wan_lora_to_diffusers(dict(lora))
    expected = load_file(diffusers)
    assert set(converted) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(converted[key], tensor), key


def test_comfyui_wan_patches_give_the_transformer_sma_generates_with(wan_run, wan_folder, tmp_path):
    """ComfyUI's rule for this layout: `{name}.lora_up.weight @ {name}.lora_down.weight` (strength 1, no alpha) is
    added to the original model's `{name}.weight`. The original names go back to diffusers' through diffusers'
    single-file converter for Wan checkpoints; the patched pretrained transformer predicts what sma's does."""
    path = export_adapter(wan_run, "comfyui", tmp_path / "comfy.safetensors")[0].path
    lora = load_file(path)
    patches = {
        key.removesuffix(".lora_down.weight") + ".weight": lora[key.replace(".lora_down.", ".lora_up.")] @ down
        for key, down in lora.items()
        if key.endswith(".lora_down.weight")
    }
    diffusers_patches = convert_wan_transformer_to_diffusers(
        {key.removeprefix("diffusion_model."): change for key, change in patches.items()}
    )
    method, _ = load_trained(wan_run / "adapter")
    method.prepare_generation()
    latents = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    text = method.model.encode_prompts([TARGET])
    timestep = torch.tensor([500.0])
    with torch.no_grad():
        ours = method.model.predict(latents, timestep, text)
        transformer = WanTransformer3DModel.from_pretrained(wan_folder / "transformer")
        without = transformer(latents, timestep, text).sample
        weights = transformer.state_dict()
        for name, change in diffusers_patches.items():
            weights[name] += change
        transformer.load_state_dict(weights)
        theirs = transformer(latents, timestep, text).sample
    assert len(diffusers_patches) == 20  # 2 blocks x (8 attention + 2 feed-forward layers)
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)
    assert (without - ours).abs().max() > 1e-2


def test_wan_metadata_names_what_the_lora_is(wan_run, wan_folder, tmp_path):
    path = export_adapter(wan_run, "comfyui", tmp_path / "comfy.safetensors")[0].path
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    assert metadata["rank"] == metadata["alpha"] == str(WAN_RANK)  # alpha / rank = 4 is in the up factors
    assert metadata["method"] == "motionlora" and metadata["lora_format"] == "comfyui"
    assert metadata["base_model"] == str(wan_folder) and metadata["layers"] == "20"
    options = json.loads(metadata["method_options"])
    assert options["lora_alpha"] == WAN_ALPHA and options["appearance_debiasing"] is True
    assert json.loads(metadata["sma"])["enabled"] is True and metadata["sma_version"]
    tensors = load_file(path)
    assert {tensor.shape[0] for key, tensor in tensors.items() if key.endswith(".lora_down.weight")} == {WAN_RANK}


def test_wan_keys_name_the_original_layers():
    assert WanModel.diffusers_lora_keys("blocks.7.attn2.to_out.0") == (
        "transformer.blocks.7.attn2.to_out.0.lora_A.weight",
        "transformer.blocks.7.attn2.to_out.0.lora_B.weight",
    )
    assert WanModel.comfyui_lora_keys("blocks.7.attn1.to_k") == (
        "diffusion_model.blocks.7.self_attn.k.lora_down.weight",
        "diffusion_model.blocks.7.self_attn.k.lora_up.weight",
    )
    assert WanModel.comfyui_lora_keys("blocks.0.ffn.net.0.proj")[0] == "diffusion_model.blocks.0.ffn.0.lora_down.weight"
    with pytest.raises(SmaError, match="not an attention or feed-forward layer"):
        WanModel.comfyui_lora_keys("condition_embedder.time_proj")


def test_help_says_how_each_family_loads_the_file(capsys):
    """Issue 46: `sma export --help` said pipeline.load_lora_weights(FILE), which raises on ZeroScope and the embedded
    models (their UNet3DConditionModel has no load_lora_adapter); issue 43: help and docs named Wan 2.1 text to
    video only, and the exports cover image to video too."""
    from diffusers import UNet3DConditionModel

    from sma.cli import main

    assert not hasattr(UNet3DConditionModel, "load_lora_adapter")  # what the help says
    said = {}
    for command in ("export", "train"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        said[command] = " ".join(capsys.readouterr().out.split())
    assert (
        "ZeroScope, ModelScope and the embedded models: their UNet3DConditionModel has no load_lora_adapter"
        in (said["export"])
    )
    assert "the loop in docs/export.md" in said["export"] and "(WanImageToVideoPipeline)" in said["export"]
    assert "Wan 2.1" not in said["export"] + said["train"]
    assert "embedded or embedded-hard (the small models shipped with sma: no download" in said["train"]
    assert "Hugging Face Hub id (downloaded on first use: needs a network)" in said["train"]
    assert "Wan 2.1 T2V" not in (pathlib.Path(__file__).parents[1] / "docs" / "export.md").read_text()
