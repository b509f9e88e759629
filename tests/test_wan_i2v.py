"""Wan image-to-video (2.2 TI2V-5B and 2.1 I2V-14B layouts): sampling as diffusers' pipelines, the first frame, the
training loss, transfers from a picture, and the checks of the picture."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import yaml
from diffusers import WanImageToVideoPipeline, WanPipeline
from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_wan_lora_to_diffusers
from diffusers.pipelines.wan import pipeline_wan_i2v
from PIL import Image
from safetensors.torch import load_file, save_file
from tiny_wan_i2v import build_wan_i2v, build_wan_ti2v
from transformers import CLIPVisionModel

from sma.backbones.wan_i2v import WanImageToVideoModel
from sma.cli import main
from sma.errors import SmaError
from sma.export import export_adapter
from sma.methods import build_method
from sma.recipes import load_config
from sma.runs import load_trained, train
from sma.video import (
    MovingObject,
    frames_to_tensor,
    read_video,
    synthetic_video,
    tensor_to_frames,
    video_grid,
    write_video,
)
from sma.video.image import read_image

WORDS = ("a", "red", "blue", "circle", "square")
NEGATIVE = "static, gray"
SIZE = {"ti2v": 32, "i2v": 16}  # the 16x VAE of TI2V needs 32 px for 2x2 latent patches


@pytest.fixture(scope="module", params=["ti2v", "i2v"])
def layout(request, tmp_path_factory):
    build = build_wan_ti2v if request.param == "ti2v" else build_wan_i2v
    return request.param, build(tmp_path_factory.mktemp(request.param) / "model", words=WORDS)


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A 40x48 picture: blue square on a gradient (resized and cut to the video size)."""
    frame = synthetic_video(MovingObject("square", "blue", "linear"), num_frames=2, height=40, width=48).frames[0]
    frame = (frame.astype(np.float32) * np.linspace(0.5, 1.0, 48)[None, :, None]).astype(np.uint8)
    path = tmp_path_factory.mktemp("picture") / "picture.png"
    Image.fromarray(frame).save(path)
    return path


def i2v_config(folder, size: int, method: str = "motionlora", **overrides):
    values = {"method": method, "model": str(folder), "video.frames": 9, "video.height": size, "video.width": size}
    values |= {"generate.steps": 3, "generate.guidance_scale": 4.0, "generate.negative_prompt": NEGATIVE}
    values |= {"sma.levels": 1, "targets": ["a blue square"]}
    if method == "motionlora":
        values |= {"generate.sampler": "unipc", "motionlora.sample_shift": 2.0}
    return load_config(overrides=values | overrides)


def test_sampling_equals_diffusers_image_to_video_pipeline(layout, picture, monkeypatch):
    """Same noise, image, prompts and settings: latents as WanImageToVideoPipeline's (float32 on the CPU, 1e-4); the
    first latent frame is the image's own latent, so the first decoded frame is the VAE's round trip of it."""
    # the pipeline cleans prompts with ftfy even where it is not installed: ASCII prompts, which ftfy leaves alone
    monkeypatch.setattr(pipeline_wan_i2v, "ftfy", SimpleNamespace(fix_text=lambda text: text), raising=False)
    name, folder = layout
    size = SIZE[name]
    method = build_method(i2v_config(folder, size, image=str(picture)))
    assert isinstance(method.model, WanImageToVideoModel)
    reference = torch.zeros(1, 4, 3, size // method.model.vae_scale_factor, size // method.model.vae_scale_factor)
    latents = method.generate(reference, "a blue square", seed=3)
    pipeline = WanImageToVideoPipeline.from_pretrained(folder)
    pipeline.scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config, flow_shift=2.0)
    image, pixels = read_image(picture, size, size)
    options = {"image": image, "prompt": "a blue square", "negative_prompt": NEGATIVE, "height": size, "width": size}
    options |= {"num_frames": 9, "num_inference_steps": 3, "guidance_scale": 4.0}
    expected = pipeline(**options, latents=method.fresh_noise(reference, 3), output_type="latent").frames
    assert latents[:, :, 1:].abs().max() > 0.3
    torch.testing.assert_close(latents[:, :, 1:], expected[:, :, 1:], atol=1e-4, rtol=0)
    image_latent = method.model.encode_video(pixels[:, :, None])
    torch.testing.assert_close(latents[:, :, :1], image_latent, atol=1e-6, rtol=0)
    if name == "ti2v":  # diffusers gives TI2V's frame 0 itself
        torch.testing.assert_close(latents, expected, atol=1e-4, rtol=0)
    round_trip = method.model.decode_latents(image_latent)[:, :, 0]
    torch.testing.assert_close(method.model.decode_latents(latents)[:, :, 0], round_trip, atol=1e-5, rtol=0)
    assert (round_trip - pixels).abs().mean() > 1e-3  # a random VAE: the round trip is not the picture itself


def test_first_and_last_frames_sample_as_diffusers_pipeline_with_last_image(tmp_path, picture, monkeypatch):
    """FLF2V (`last_image`): latents as WanImageToVideoPipeline's with `last_image` (black frames ending on the last
    picture, the mask giving it, CLIP's states of both); another last picture gives another video. The one-line
    errors: a last picture for a one-picture model, none for FLF2V, one without a first."""
    from sma.methods.image_to_video import check_image_inputs

    monkeypatch.setattr(pipeline_wan_i2v, "ftfy", SimpleNamespace(fix_text=lambda text: text), raising=False)
    folder = build_wan_i2v(tmp_path / "model", words=WORDS, first_and_last=True)
    last = tmp_path / "last.png"
    Image.open(picture).transpose(Image.Transpose.ROTATE_180).save(last)
    reference = torch.zeros(1, 4, 3, 2, 2)
    method = build_method(i2v_config(folder, 16, image=str(picture), last_image=str(last)))
    latents = method.generate(reference, "a blue square", seed=3)
    pipeline = WanImageToVideoPipeline.from_pretrained(folder)
    pipeline.scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config, flow_shift=2.0)
    options = {"image": read_image(picture, 16, 16)[0], "last_image": read_image(last, 16, 16)[0], "height": 16}
    options |= {"prompt": "a blue square", "negative_prompt": NEGATIVE, "width": 16, "num_frames": 9}
    options |= {"num_inference_steps": 3, "guidance_scale": 4.0, "latents": method.fresh_noise(reference, 3)}
    expected = pipeline(**options, output_type="latent").frames
    torch.testing.assert_close(latents[:, :, 1:], expected[:, :, 1:], atol=1e-4, rtol=0)
    method.config.last_image = str(picture)
    assert (method.generate(reference, "a blue square", seed=3) - latents).abs().max() > 1e-2
    clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=9, height=16, width=16).frames
    own = method.condition_on(frames_to_tensor(clip))  # the reference: its own first and last frames
    assert own["image_embeds"].shape[0] == 2 and own["image_latents"][0, :4, -1].flatten(1).amax(1).tolist() == [
        0,
        0,
        0,
        1,
    ]
    one_picture = build_wan_i2v(tmp_path / "i2v", words=WORDS)
    cases = {
        (one_picture, str(last)): "starts a video from one picture: `last_image` needs a first-and-last-frame model",
        (folder, ""): "takes the first and the last frame: give the last too",
    }
    for (model, ending), message in cases.items():
        with pytest.raises(SmaError, match=message):
            check_image_inputs(i2v_config(model, 16, image=str(picture), last_image=ending))
    with pytest.raises(SmaError, match="`last_image` ends the video that `image`"):
        i2v_config(folder, 16, last_image=str(last))


def test_ti2v_without_an_image_samples_as_wan_pipeline(tmp_path):
    """TI2V-5B is a text-to-video model too: without an image, WanPipeline's sampling (per-token timesteps)."""
    folder = build_wan_ti2v(tmp_path / "model", words=WORDS)
    method = build_method(i2v_config(folder, 32))
    reference = torch.zeros(1, 4, 3, 2, 2)
    latents = method.generate(reference, "a blue square", seed=1)
    pipeline = WanPipeline.from_pretrained(folder)
    pipeline.scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config, flow_shift=2.0)
    options = {"prompt": "a blue square", "negative_prompt": NEGATIVE, "height": 32, "width": 32, "num_frames": 9}
    options |= {"num_inference_steps": 3, "guidance_scale": 4.0, "latents": method.fresh_noise(reference, 1)}
    torch.testing.assert_close(latents, pipeline(**options, output_type="latent").frames, atol=1e-4, rtol=0)


def test_ti2v_training_gives_the_first_frame_and_leaves_it_out_of_the_loss(tmp_path, picture):
    """Written out: the input's frame 0 is the reference's first latent frame, at timestep 0 on its tokens, the
    others noised at 1000 s; the flow loss covers frames 1 on."""
    folder = build_wan_ti2v(tmp_path / "model", words=WORDS)
    method = build_method(i2v_config(folder, 32, image=str(picture), **{"sma.enabled": False}))
    model = method.model
    clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=9, height=32, width=32).frames
    clip = frames_to_tensor(clip)
    method.set_conditions(method.condition_on(clip))
    method.prepare()
    latents = model.encode_video(clip)
    torch.testing.assert_close(method.reference_condition.latents, latents[:, :, :1])
    text = model.encode_prompts(["a red circle"])
    terms = method.loss(latents, text, torch.Generator().manual_seed(5))
    draws = torch.Generator().manual_seed(5)
    noise = torch.randn(latents.shape, generator=draws)
    u = torch.randn(1, generator=draws).sigmoid()
    s = 3 * u / (1 + 2 * u)
    noisy = torch.cat([latents[:, :, :1], ((1 - s) * latents + s * noise)[:, :, 1:]], dim=2)
    per_token = torch.cat([torch.zeros(1), s * 1000, s * 1000])[None]  # 3 latent frames of one 2x2 patch each
    with torch.no_grad():
        velocity = model.unet(noisy, per_token, text).sample
    torch.testing.assert_close(terms["flow"], ((velocity - (noise - latents))[:, :, 1:] ** 2).mean())


def test_bad_images_get_one_line_before_any_model_loads(tmp_path, picture):
    from sma.methods.image_to_video import check_image_inputs

    folder = tmp_path / "absent-model"
    alpha, wide, small, text = (tmp_path / name for name in ("alpha.png", "wide.png", "small.png", "text.png"))
    Image.new("RGBA", (32, 32)).save(alpha)
    cv2.imwrite(str(wide), np.full((32, 32, 3), 40000, dtype=np.uint16))  # Pillow opens 48-bit RGB as RGB
    Image.new("RGB", (8, 8)).save(small)
    text.write_text("not an image")
    cases = {
        tmp_path / "missing.png": "no image at",
        text: "not an image",
        alpha: "alpha channel",
        wide: "16-bit",
        small: "too small",
    }
    for path, message in cases.items():
        with pytest.raises(SmaError, match=message):
            check_image_inputs(i2v_config(folder, 32, image=str(path)))
    check_image_inputs(i2v_config(folder, 32, image=str(picture)))
    with pytest.raises(SmaError, match="not both"):
        i2v_config(folder, 32, image=str(picture), target_images=[str(picture)])
    with pytest.raises(SmaError, match="give one each"):
        i2v_config(folder, 32, target_images=[str(picture)] * 2)
    with pytest.raises(SmaError, match="leave `image` empty"):
        i2v_config(folder, 32, method="vmc", image=str(picture))
    with pytest.raises(SmaError, match="appearance_debiasing learns the look from single frames"):
        i2v_config(folder, 32, image=str(picture), **{"motionlora.appearance_debiasing": True})


@pytest.mark.parametrize("method", ["motionlora", "flowmotion"])
def test_transfer_from_a_picture_on_the_command_line(layout, picture, method, tmp_path):
    """`sma transfer REF --image PIC --target ...` trains (motionlora) or guides (flowmotion) on both layouts; every
    video starts from the picture as the VAE reproduces it, the untuned image-to-video beside it."""
    name, folder = layout
    size = SIZE[name]
    clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=9, height=size, width=size)
    reference = write_video(tmp_path / "reference.mp4", clip.frames)
    recipe = tmp_path / "recipe.yaml"
    sampler = "unipc" if method == "motionlora" else "euler"
    settings = {method: {"lora_rank": 2} if method == "motionlora" else {"guidance_steps": 1, "iterations": 1}}
    recipe.write_text(yaml.safe_dump({"generate": {"sampler": sampler, "guidance_scale": 3.0}, **settings}))
    arguments = ["transfer", str(reference), "--out", str(tmp_path / "run"), "--config", str(recipe)]
    arguments += ["--method", method, "--model", str(folder), "--image", str(picture), "--target", "a blue square"]
    arguments += ["--frames", "9", "--height", str(size), "--width", str(size), "--untuned"]
    arguments += ["--steps", "2"] if method == "motionlora" else []
    arguments += ["--sampling-steps", "2", "--sma-levels", "1", "--prompt", "a red circle"]
    assert main(arguments) == 0
    run = tmp_path / "run"
    video = read_video(run / "videos" / "00-a-blue-square.gif")  # a palette, not 4:2:0 chroma: near the pixels
    untuned = read_video(run / "untuned" / "00-a-blue-square.gif")
    assert len(video) == len(untuned) == 9
    model = build_method(load_config(run / "config.yaml")).model
    _, pixels = read_image(picture, size, size)
    first = model.decode_latents(model.encode_video(pixels[:, :, None]))[:, :, 0]
    expected = tensor_to_frames(first[:, :, None])[0].astype(np.float32)
    for frames in (video, untuned):
        assert np.abs(frames[0].astype(np.float32) - expected).mean() < 3
    assert (run / "adapter").is_dir() == (method == "motionlora")
    columns = video_grid([video] * 4, ["reference", "image", "untuned", "output"], columns=4).shape[2]
    assert read_video(run / "comparison.mp4").shape[2] == columns  # reference, the picture, untuned, transfer


@pytest.fixture(scope="module")
def trained(layout, picture, tmp_path_factory):
    """motionlora trained two steps at a large learning rate on each layout, conditioned on the reference's first
    frame (an `image` set: TI2V trains image-to-video)."""
    name, folder = layout
    size, out = SIZE[name], tmp_path_factory.mktemp(f"{name}-run")
    clip = synthetic_video(MovingObject("circle", "red", "zigzag"), num_frames=9, height=size, width=size)
    reference = write_video(out / "reference.mp4", clip.frames)
    values = {"prompt": "a red circle", "train.steps": 2, "train.learning_rate": 5e-2, "generate.sampler": "unipc"}
    values |= {"motionlora.lora_rank": 2, "motionlora.lora_alpha": 8.0, "motionlora.sample_shift": 3.0}
    config = i2v_config(folder, size, image=str(picture), **values)
    return name, folder, train(config, reference, out / "run")


def test_diffusers_image_to_video_pipeline_with_the_exported_lora_samples_what_sma_generates(
    trained, picture, tmp_path, monkeypatch
):
    """WanImageToVideoPipeline.load_lora_weights(FILE), the same noise and image: the latents `sma generate` makes
    (frame 0 is the image's latent in sma; diffusers samples it on I2V-14B)."""
    monkeypatch.setattr(pipeline_wan_i2v, "ftfy", SimpleNamespace(fix_text=lambda text: text), raising=False)
    name, folder, run = trained
    size = SIZE[name]
    method, adapter = load_trained(run / "adapter")
    ours = method.generate(adapter.reference_latents, "a blue square", 3)
    path = tmp_path / "lora.safetensors"
    assert main(["export", str(run), "--format", "diffusers", "--out", str(path)]) == 0
    pipeline = WanImageToVideoPipeline.from_pretrained(folder)  # UniPC, flow shift 3.0: motionlora.sample_shift
    options = {"image": read_image(picture, size, size)[0], "prompt": "a blue square", "height": size, "width": size}
    options |= {"negative_prompt": NEGATIVE, "num_frames": 9, "num_inference_steps": 3, "guidance_scale": 4.0}
    options |= {"output_type": "latent"}
    without = pipeline(**options, latents=method.fresh_noise(adapter.reference_latents, 3)).frames
    pipeline.load_lora_weights(str(path))
    theirs = pipeline(**options, latents=method.fresh_noise(adapter.reference_latents, 3)).frames
    torch.testing.assert_close(theirs[:, :, 1:], ours[:, :, 1:], atol=1e-4, rtol=0)
    assert (without - ours)[:, :, 1:].abs().max() > 1e-2  # the LoRA is what makes them equal
    comfy = load_file(export_adapter(run, "comfyui", tmp_path / "comfy.safetensors")[0].path)
    converted, expected = _convert_non_diffusers_wan_lora_to_diffusers(dict(comfy)), load_file(path)
    assert set(converted) == set(expected) and all(torch.equal(converted[key], expected[key]) for key in expected)


def test_generate_from_an_adapter_with_one_picture_per_target(trained, picture, tmp_path):
    name, _, run = trained
    size = SIZE[name]
    other = tmp_path / "other.png"
    Image.fromarray(np.full((size, size, 3), (200, 40, 40), dtype=np.uint8)).save(other)
    arguments = ["generate", "--adapter", str(run), "--out", str(tmp_path / "out"), "--target", "a blue square"]
    arguments += ["--target", "a red circle", "--target-image", str(picture), "--target-image", str(other)]
    assert main(arguments) == 0
    model = load_trained(run / "adapter")[0].model
    for index, (target, image) in enumerate((("a-blue-square", picture), ("a-red-circle", other))):
        first = model.decode_latents(model.encode_video(read_image(image, size, size)[1][:, :, None]))
        expected = tensor_to_frames(first[:, :, :1])[0].astype(np.float32)
        frames = read_video(tmp_path / "out" / "videos" / f"{index:02d}-{target}.gif")
        assert np.abs(frames[0].astype(np.float32) - expected).mean() < 3
    missing = ["generate", "--adapter", str(run), "--out", str(tmp_path / "x"), "--target", "a", "--image", "gone.png"]
    assert main(missing) == 2


@pytest.mark.parametrize(
    ("layout", "count"),
    [("ti2v", 47_185_920), ("i2v", 104_857_600)],  # 30 x 8 x 32 (3072 + 3072); 40 x 8 x 32 (5120 + 5120)
)
def test_real_size_structures(layout, count):
    """On the meta device: the LoRA layers of the two layouts (the image's key/value projections stay frozen, as for
    the text), and the shapes the transformer is given and returns at the recipes' sizes."""
    from diffusers import AutoencoderKLWan
    from real_scale import (
        CLIP_VIT_H,
        WAN22_VAE,
        WAN_I2V_14B,
        WAN_TI2V_5B,
        lora_parameter_count,
        meta_wan,
        motionlora_official,
        on_meta,
        wan_transformer,
    )
    from transformers import CLIPVisionConfig

    from sma.methods.motionlora import MotionLoRA

    config = WAN_TI2V_5B if layout == "ti2v" else WAN_I2V_14B
    transformer = wan_transformer(config)
    base = meta_wan(transformer)
    if layout == "ti2v":
        vae = on_meta(AutoencoderKLWan, WAN22_VAE)
        model = WanImageToVideoModel(**vars(base) | {"vae": vae}, expand_timesteps=True)
        frames, height, width = 121, 704, 1280  # Wan 2.2's 720P at 24 fps, 5 s
    else:
        with torch.device("meta"):
            encoder = CLIPVisionModel(CLIPVisionConfig(**CLIP_VIT_H))
        model = WanImageToVideoModel(**vars(base) | {"vae": on_meta(AutoencoderKLWan, {})}, image_encoder=encoder)
        frames, height, width = 81, 480, 832
    overrides = {"method": "motionlora", "video.frames": frames, "video.height": height, "video.width": width}
    method = MotionLoRA(model, load_config(overrides=overrides))
    official = motionlora_official(transformer, feed_forward=False)
    assert set(method.lora_targets()) == {name for name in official if ".add_" not in name}
    assert lora_parameter_count(transformer, set(method.lora_targets())) == count
    shape = model.latent_shape(frames, height, width)
    assert shape == ((1, 48, 31, 44, 80) if layout == "ti2v" else (1, 16, 21, 60, 104))
    assert transformer.patch_embedding.in_channels == (48 if layout == "ti2v" else 16 + 4 + 16)
    if layout == "i2v":
        assert transformer.condition_embedder.image_embedder.norm1.normalized_shape == (encoder.config.hidden_size,)
        tokens = (CLIP_VIT_H["image_size"] // CLIP_VIT_H["patch_size"]) ** 2 + 1
        assert tokens == 257


def test_an_image_encoder_missing_weights_is_refused(tmp_path):
    """transformers would start a missing weight at random and warn: sma refuses, as for every network it loads."""
    folder = build_wan_i2v(tmp_path / "model", words=WORDS)
    weights = folder / "image_encoder" / "model.safetensors"
    tensors = load_file(weights)
    save_file({name: tensor for name, tensor in tensors.items() if "layers.1.mlp.fc1" not in name}, weights)
    with pytest.raises(SmaError, match=r"not CLIP's vision tower: 2 weights missing .*layers\.1\.mlp\.fc1"):
        build_method(i2v_config(folder, 16, image="unused.png"))


def test_flowmotion_estimates_the_reference_given_its_own_first_frame(tmp_path, picture):
    """Written out on TI2V: inside sampling from the picture, the reference's estimate is the model's on the noised
    reference with the reference's first latent frame given at timestep 0 (not the picture's), that frame kept."""
    folder = build_wan_ti2v(tmp_path / "model", words=WORDS)
    method = build_method(i2v_config(folder, 32, method="flowmotion", image=str(picture)))
    model = method.model
    clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=9, height=32, width=32).frames
    clip = frames_to_tensor(clip)
    method.set_conditions(method.condition_on(clip))
    clean = model.encode_video(clip)
    schedule, empty = method.schedule(clean.device), model.encode_prompts([""])
    with method.conditioned_on(method.target_condition("a blue square")):
        estimate = method.source_estimate(clean, schedule, 1, empty, torch.Generator().manual_seed(2))
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    sigma, t = schedule.sigmas[1], schedule.timesteps[1]
    noisy = (1 - sigma) * clean + sigma * noise
    given = torch.cat([clean[:, :, :1], noisy[:, :, 1:]], dim=2)
    with torch.no_grad():
        velocity = model.unet(given, torch.stack([torch.zeros(()), t, t])[None], empty).sample
    expected = torch.cat([clean[:, :, :1], (noisy - sigma * velocity)[:, :, 1:]], dim=2)
    torch.testing.assert_close(estimate, expected, atol=1e-5, rtol=0)


def test_the_model_must_take_the_picture(tmp_path, picture):
    """Read from model_index.json before loading: a picture for a text-to-video model, none for I2V-14B."""
    from sma.methods.image_to_video import check_image_inputs
    from tiny_wan import build_wan

    text_to_video = build_wan(tmp_path / "t2v", words=WORDS)
    with pytest.raises(SmaError, match="is not an image-to-video model"):
        check_image_inputs(i2v_config(text_to_video, 32, image=str(picture)))
    image_to_video = build_wan_i2v(tmp_path / "i2v", words=WORDS)
    with pytest.raises(SmaError, match="is an image-to-video model: give the image"):
        check_image_inputs(i2v_config(image_to_video, 16))
    check_image_inputs(i2v_config(build_wan_ti2v(tmp_path / "ti2v", words=WORDS), 32))  # TI2V: text to video too


def test_the_page_compares_reference_picture_untuned_and_both_variants(picture, tmp_path):
    """The page's comparison of a job (with and without SMA) on image to video: reference, the picture, untuned,
    with SMA, without SMA, one row per target."""
    pytest.importorskip("gradio", reason="the ui extra is not installed: pip install -e '.[ui]'")
    from sma.runs import transfer
    from sma.ui import results

    folder = build_wan_i2v(tmp_path / "model", words=WORDS)
    clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=9, height=16, width=16)
    reference = write_video(tmp_path / "reference.mp4", clip.frames)
    settings = {"generate.sampler": "euler", "generate.steps": 2, "flowmotion.guidance_steps": 1, "image": str(picture)}
    settings["prompt"] = "a red circle"
    for variant, untuned in (("sma", True), ("nosma", False)):
        config = i2v_config(folder, 16, "flowmotion", **settings, **{"generate.untuned": untuned})
        transfer(config, reference, tmp_path / "job" / variant)
    found = results(tmp_path / "job", tmp_path / "downloads")
    video = read_video(tmp_path / "job" / "sma" / "videos" / "00-a-blue-square.mp4")
    labels = ["reference", "image", "untuned", "with SMA", "without SMA"]
    assert read_video(found.comparison).shape[1:3] == video_grid([video] * 5, labels, columns=5).shape[1:3]
