"""Wan 2.2 A14B (two experts: `transformer` at high noise, `transformer_2` below `boundary_ratio`), text and image to
video, on tiny two-expert models of the real classes: sampling as diffusers' pipelines, motionlora per expert,
FlowMotion across the boundary, exports per expert."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers import WanImageToVideoPipeline, WanPipeline
from diffusers.pipelines.wan import pipeline_wan_i2v
from PIL import Image
from tiny_wan_i2v import build_wan_i2v_a14b

from sma.backbones.wan import HIGH_NOISE, LOW_NOISE
from sma.methods import build_method
from sma.recipes import load_config
from sma.video.image import read_image
from tiny_wan import build_wan_a14b

WORDS = ("a", "red", "blue", "circle", "square")
NEGATIVE = "static, gray"


@pytest.fixture(scope="module", params=["t2v", "i2v"])
def layout(request, tmp_path_factory):
    build = build_wan_a14b if request.param == "t2v" else build_wan_i2v_a14b
    return request.param, build(tmp_path_factory.mktemp(request.param) / "model", words=WORDS)


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
