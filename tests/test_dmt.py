"""DMT zero-shot motion transfer, with and without SMA in feature space, on the tiny ZeroScope-layout model."""

import json

import pytest
import torch
from diffusers import DDIMScheduler

from sma.backbones.tiny import build_text_to_video
from sma.cli import main
from sma.errors import SmaError
from sma.methods import build_method
from sma.methods.dmt import DMT, renoise
from sma.recipes import load_config
from sma.sampling import ddim_inversion, guided, low_frequency_prior, make_scheduler, sample
from sma.spectral import SpectralMotionAlignment
from sma.video import MovingObject, read_video, read_video_tensor, synthetic_video, write_video

SIZE = 32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_text_to_video(tmp_path_factory.mktemp("zeroscope-tiny"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=8, height=SIZE, width=SIZE)
    return write_video(tmp_path_factory.mktemp("reference") / "circle.mp4", clip.frames)


def dmt_config(model_dir, **overrides):
    values = {
        "method": "dmt",
        "model": str(model_dir),
        "prompt": "a red circle moving right",
        "targets": ["a blue square"],
        "video.frames": 8,
        "video.height": SIZE,
        "video.width": SIZE,
        "generate.steps": 2,
        "generate.inversion_steps": 2,
        "dmt.guidance_fraction": 0.5,  # 1 of 2 steps
        "dmt.iterations": 2,
    }
    values.update(overrides)
    return load_config(overrides=values)


@pytest.fixture(scope="module")
def reference_latents(model_dir, reference):
    method = build_method(dmt_config(model_dir))
    return method.model.encode_video(read_video_tensor(reference, 8, size=(SIZE, SIZE)))


@pytest.mark.parametrize("steps", [3, 50])
@pytest.mark.parametrize("offset", [0, 1])
def test_inversion_visits_the_sampling_timesteps_in_reverse(steps, offset):
    config = DDIMScheduler(beta_schedule="scaled_linear", steps_offset=offset, set_alpha_to_one=False).config
    sampler = make_scheduler("ddim", config)
    sampler.set_timesteps(steps)
    zero = torch.zeros(1, 4, 2, 2, 2)
    visited = [t for t, _ in ddim_inversion(lambda latents, t: torch.zeros_like(latents), zero, config, steps, False)]
    assert visited == sampler.timesteps.flip(0).tolist()


def test_low_frequency_prior_keeps_low_frequencies_of_the_inversion_and_high_ones_of_noise():
    size = 32
    waves = 2 * torch.pi * torch.arange(float(size)) / size
    inverted = (waves.cos()[:, None] + waves.sin()[None, :]).expand(1, 4, 3, size, size).clone()  # lowest frequencies
    noise = torch.randn(1, 4, 3, size, size, generator=torch.Generator().manual_seed(0))
    assert torch.equal(low_frequency_prior(inverted, noise, 1), inverted)
    start = low_frequency_prior(inverted, noise, 4)

    def spectrum(video):
        return torch.fft.fftshift(torch.fft.fft2(video), dim=(-2, -1))

    frequencies = torch.arange(size) - size // 2
    radius = torch.maximum(frequencies[:, None].abs(), frequencies[None, :].abs())
    low, high = radius <= 1, radius >= size // 4  # the filter keeps 1/4 of the band
    low_error = (spectrum(start) - spectrum(inverted))[..., low].norm() / spectrum(inverted)[..., low].norm()
    high_error = (spectrum(start) - spectrum(noise))[..., high].norm() / spectrum(noise)[..., high].norm()
    assert low_error < 0.2 and high_error < 0.12
    with pytest.raises(SmaError, match="low-pass factor must be >= 1"):
        low_frequency_prior(inverted, noise, 0)


def test_restart_noise_has_the_variance_of_the_skipped_steps():
    scheduler = make_scheduler("ddim", DDIMScheduler(beta_schedule="scaled_linear").config)
    scheduler.set_timesteps(50)
    t = scheduler.timesteps[10]
    generator = torch.Generator().manual_seed(0)
    noised = renoise(torch.ones(1, 4, 8, 64, 64), scheduler, t, generator)
    kept = scheduler.alphas_cumprod[int(t)] / scheduler.alphas_cumprod[int(t) - 20]
    assert abs(noised.mean().item() - kept.sqrt().item()) < 3e-3
    assert abs(noised.std().item() - (1 - kept).sqrt().item()) < 3e-3


def test_features_stop_the_unet_after_the_last_hooked_block(model_dir):
    model = build_method(dmt_config(model_dir)).model
    latents = torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    text = model.encode_prompts(["a red circle"])
    t = torch.tensor(500)
    with model.capture_features(["up_blocks.0"]) as full:
        model.predict(latents, t, text)
    calls = []
    handle = model.unet.up_blocks[1].register_forward_hook(lambda *_: calls.append(1))
    features = model.features(latents, t, text, ["up_blocks.0"])
    handle.remove()
    assert calls == []  # up_blocks.1 and everything after it never ran
    assert torch.equal(features["up_blocks.0"], full["up_blocks.0"])
    with pytest.raises(SmaError, match=r"no module named up_blocks\.9"):
        model.features(latents, t, text, ["up_blocks.9"])


def test_sma_terms_run_on_the_feature_maps(model_dir, monkeypatch):
    method = build_method(dmt_config(model_dir))
    assert isinstance(method, DMT) and method.sma.global_weight == method.options.sma_global_weight
    latents = torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    text = method.model.encode_prompts(["x"])
    t = torch.tensor(700)
    reference = method.feature_videos(latents, t, text)
    output = method.feature_videos(latents.flip(2), t, text)
    assert reference["up_blocks.1"].shape == (1, 16, 8, 16, 16)  # (b, c, f, h, w): channels of the last up block
    seen = []
    original = SpectralMotionAlignment.terms

    def recording(self, target, prediction):
        seen.append((target, prediction))
        return original(self, target, prediction)

    monkeypatch.setattr(SpectralMotionAlignment, "terms", recording)
    terms = method.feature_loss(reference, output)
    ((scaled_reference, scaled_output),) = seen
    assert scaled_reference.shape == scaled_output.shape == (1, 16, 8, 16, 16)
    torch.testing.assert_close(scaled_reference.square().mean(), torch.tensor(1.0))
    scale = reference["up_blocks.1"].square().mean().sqrt()
    independent = SpectralMotionAlignment(
        global_weight=method.options.sma_global_weight, local_weight=method.options.sma_local_weight
    )(reference["up_blocks.1"] / scale, output["up_blocks.1"] / scale)
    torch.testing.assert_close(terms["sma"], independent)
    torch.testing.assert_close(terms["loss"], terms["dmt"] + independent)
    assert {"sma_global_motion", "sma_local_amplitude", "sma_local_phase"} <= terms.keys()


@pytest.mark.parametrize("use_sma", [True, False])
def test_guidance_lowers_the_feature_loss(model_dir, reference_latents, use_sma):
    method = build_method(dmt_config(model_dir, **{"sma.enabled": use_sma, "dmt.iterations": 6}))
    model = method.model
    source, target = model.encode_prompts(["a red circle"]), model.encode_prompts(["a blue square"])
    t = torch.tensor(801)
    reference_noisy = model.scheduler.add_noise(reference_latents, torch.randn_like(reference_latents), t)
    start = torch.randn(reference_latents.shape, generator=torch.Generator().manual_seed(1))
    moved = method.guide(start, t, reference_noisy, source, target, learning_rate=0.05)
    losses = [record["loss"] for record in method.guidance_log]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert ("sma" in method.guidance_log[0]) == use_sma
    assert not torch.equal(moved, start) and not moved.requires_grad


def test_outputs_are_reproducible_and_sma_changes_them(model_dir, reference_latents):
    with_sma = build_method(dmt_config(model_dir))
    first = with_sma.generate(reference_latents, "a blue square", seed=5)
    assert len(with_sma.guidance_log) == 2  # 1 guided step x 2 iterations
    assert torch.equal(first, with_sma.generate(reference_latents, "a blue square", seed=5))
    assert not torch.equal(first, with_sma.generate(reference_latents, "a blue square", seed=6))
    without = build_method(dmt_config(model_dir, **{"sma.enabled": False}))
    assert not torch.allclose(first, without.generate(reference_latents, "a blue square", seed=5), atol=1e-4)
    on_disk = build_method(dmt_config(model_dir, **{"dmt.keep_on_disk": True}))
    assert not reference_latents.is_contiguous()  # as the VAE gives it: the stores must not change the layout
    assert torch.equal(first, on_disk.generate(reference_latents, "a blue square", seed=5))


def test_no_guidance_and_no_restart_is_plain_ddim_from_the_prior(model_dir, reference_latents):
    """With guidance and restart off, DMT is exactly the shared sampler from its initial latent."""
    config = dmt_config(model_dir, **{"dmt.guidance_fraction": 0.0, "dmt.restart": False})
    method = build_method(config)
    model = method.model
    output = method.generate(reference_latents, "a blue square", seed=2)
    assert method.guidance_log == []
    source = model.encode_prompts([config.prompt])
    inverted = list(
        ddim_inversion(guided(model.predict, source, source, 1.0), reference_latents, model.scheduler.config, 2)
    )[-1][1]
    noise = torch.randn(reference_latents.shape, generator=torch.Generator().manual_seed(2))
    start = low_frequency_prior(inverted, noise, config.options.low_pass_factor)
    denoise = guided(model.predict, model.encode_prompts(["a blue square"]), model.encode_prompts([""]), 12.0)
    expected = sample(denoise, start, make_scheduler("ddim", model.scheduler.config), 2, progress=False)
    torch.testing.assert_close(output, expected)


@pytest.mark.parametrize("use_sma", [True, False])
def test_transfer_command_writes_the_run_folder(model_dir, reference, tmp_path, use_sma):
    out = tmp_path / "run"
    arguments = ["transfer", str(reference), "--method", "dmt", "--model", str(model_dir), "--out", str(out)]
    arguments += ["--prompt", "a red circle", "--target", "a blue square", "--seed", "3"]
    arguments += ["--frames", "8", "--height", str(SIZE), "--width", str(SIZE)]
    arguments += [] if use_sma else ["--no-sma"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("generate: {steps: 2, inversion_steps: 2}\ndmt: {iterations: 1, guidance_fraction: 0.5}\n")
    assert main([*arguments, "--config", str(recipe)]) == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "comparison.mp4",
        "config.yaml",
        "guidance_log.json",
        "metrics.json",
        "reference.mp4",
        "videos",
    ]
    guidance = json.loads((out / "guidance_log.json").read_text())
    assert [record["iteration"] for record in guidance] == [0]  # 1 guided step x 1 iteration
    assert guidance[0]["target"] == "a blue square" and guidance[0]["loss"] > 0
    assert ("sma" in guidance[0]) == use_sma
    assert sorted(path.name for path in (out / "videos").iterdir()) == ["00-a-blue-square.gif", "00-a-blue-square.mp4"]
    assert read_video(out / "videos" / "00-a-blue-square.mp4").shape == (8, SIZE, SIZE, 3)
    metrics = json.loads((out / "metrics.json").read_text())
    assert [entry["target"] for entry in metrics["outputs"]] == ["a blue square"]
    saved = load_config(out / "config.yaml")
    assert saved.method == "dmt" and saved.sma.enabled == use_sma and saved.options.iterations == 1


def test_dmt_errors(model_dir, reference, tmp_path, capsys):
    assert main(["train", str(reference), "--method", "dmt", "--model", str(model_dir), "--out", str(tmp_path)]) == 2
    assert "dmt trains nothing: transfer guides" in capsys.readouterr().err
    with pytest.raises(SmaError, match="dmt samples with ddim"):
        dmt_config(model_dir, **{"generate.sampler": "dpmsolver++"})
    with pytest.raises(SmaError, match=r"inversion_steps equal to generate\.steps"):
        dmt_config(model_dir, **{"generate.inversion_steps": 5})
    with pytest.raises(SmaError, match=r"guidance_fraction must be in \[0, 1\]"):
        dmt_config(model_dir, **{"dmt.guidance_fraction": 1.5})
    with pytest.raises(SmaError, match=r"recipe key dmt\.layers must be a list"):
        dmt_config(model_dir, **{"dmt.layers": "up_blocks.1"})
    code = main(["transfer", str(reference), "--method", "dmt", "--model", str(model_dir), "--out", str(tmp_path)])
    assert code == 2 and "give at least one target" in capsys.readouterr().err
