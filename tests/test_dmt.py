"""DMT zero-shot motion transfer, with and without SMA in feature space, on a tiny ZeroScope-layout model.

The tiny UNet has three resolutions, so that its `up_blocks.1` is, as in ZeroScope, a
CrossAttnUpBlock3D with an upsampler: the official three taps exist in it.
"""

import json
import warnings
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler

from sma.cli import main
from sma.errors import SmaError
from sma.memory_budget import MemoryBudgetWarning
from sma.methods import build_method
from sma.methods.dmt import DMT, ReferenceLatents, renoise, start_latent, unclipped_inversion
from sma.methods.options import OFFICIAL_LAYERS, DMTOptions
from sma.recipes import load_config
from sma.runs import untuned
from sma.sampling import ddim_inversion, guided, low_frequency_prior, make_scheduler, sample
from sma.spectral import SpectralMotionAlignment
from sma.video import read_video, read_video_tensor
from tiny_models import TinySizes, build_text_to_video

SIZE = 32
RECIPE = Path(__file__).parents[1] / "configs" / "dmt-zeroscope.yaml"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_text_to_video(tmp_path_factory.mktemp("zeroscope-tiny"), TinySizes(unet_channels=(16, 16, 32)))


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
def method(model_dir):
    return build_method(dmt_config(model_dir))


@pytest.fixture(scope="module")
def reference_latents(method, reference):
    return method.model.encode_video(read_video_tensor(reference, 8, size=(SIZE, SIZE)))


def official_inversion(denoise, latents, config, steps):
    """preprocess_video_ddim.py's loop, restated: the DDIM sampler's timesteps reversed; at each, epsilon
    evaluated at that (target) timestep on the latent at the previous one; the first step starts from
    final_alpha_cumprod."""
    scheduler = DDIMScheduler.from_config(config)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.flip(0)
    visited = []
    for i, t in enumerate(timesteps):
        alpha = scheduler.alphas_cumprod[t]
        alpha_before = scheduler.alphas_cumprod[timesteps[i - 1]] if i > 0 else scheduler.final_alpha_cumprod
        eps = denoise(latents, t)
        clean = (latents - (1 - alpha_before).sqrt() * eps) / alpha_before.sqrt()
        latents = alpha.sqrt() * clean + (1 - alpha).sqrt() * eps
        visited.append((int(t), latents))
    return visited


@pytest.mark.parametrize("steps", [3, 50])
@pytest.mark.parametrize("offset", [0, 1])
def test_inversion_visits_the_sampling_timesteps_in_reverse(steps, offset):
    config = DDIMScheduler(beta_schedule="scaled_linear", steps_offset=offset, set_alpha_to_one=False).config
    sampler = make_scheduler("ddim", config)
    sampler.set_timesteps(steps)
    zero = torch.zeros(1, 4, 2, 2, 2)
    visited = [t for t, _ in ddim_inversion(lambda latents, t: torch.zeros_like(latents), zero, config, steps, False)]
    assert visited == sampler.timesteps.flip(0).tolist()


@pytest.mark.parametrize("offset", [0, 1])
def test_inversion_is_the_official_one(method, reference_latents, offset):
    """diffusers' DDIMInverseScheduler, as `ddim_inversion` uses it, steps exactly as DMT's preprocessing
    when x0 is not clipped (set_alpha_to_one false, as in the tiny model's configuration)."""
    model = method.model
    config = DDIMScheduler.from_config(model.scheduler.config, steps_offset=offset, clip_sample=False).config
    text = model.encode_prompts(["a red circle"])
    denoise = guided(model.predict, text, text, 1.0)
    ours = list(ddim_inversion(denoise, reference_latents, config, 5, False))
    official = official_inversion(denoise, reference_latents, config, 5)
    assert [t for t, _ in ours] == [t for t, _ in official]
    for (_, latent), (_, expected) in zip(ours, official, strict=True):
        torch.testing.assert_close(latent, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("offset", [0, 1])
def test_dmt_inversion_at_999_steps_is_the_official_one(offset):
    """The recipe's 999 steps (T/steps = 1: diffusers' first step starts at t0 - 1 >= 0), with a config
    that asks for clip_sample, which DMT's loop never does."""
    config = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", set_alpha_to_one=False, steps_offset=offset
    ).config
    assert config.clip_sample

    def denoise(latents, t):
        return 0.5 * latents.tanh() + t / 1000

    latents = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    ours = list(unclipped_inversion(denoise, latents, config, 999, progress=False))
    official = official_inversion(denoise, latents, config, 999)
    assert [t for t, _ in ours] == [t for t, _ in official] == list(range(offset, 999 + offset))
    torch.testing.assert_close(torch.stack([x for _, x in ours]), torch.stack([x for _, x in official]))
    clipped = list(ddim_inversion(denoise, latents, config, 999, False))
    assert not torch.allclose(clipped[-1][1], ours[-1][1])


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


def test_start_latent_renoises_the_reference_with_the_implied_noise():
    """initialize_latent.py:84-107: eps = (z_T - sqrt(a_T) x0) / sqrt(1 - a_T), then add_noise(x0, eps, t_start)."""
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    generator = torch.Generator().manual_seed(0)
    clean, noisiest, noise = (torch.randn(1, 4, 3, 16, 16, generator=generator) for _ in range(3))
    a_last, a_start = scheduler.alphas_cumprod[999].item(), scheduler.alphas_cumprod[981].item()
    implied = (noisiest - a_last**0.5 * clean) / (1 - a_last) ** 0.5
    expected = a_start**0.5 * clean + (1 - a_start) ** 0.5 * implied
    torch.testing.assert_close(start_latent(clean, noisiest, 999, torch.tensor(981), scheduler, noise, 1), expected)
    filtered = start_latent(clean, noisiest, 999, torch.tensor(981), scheduler, noise, 4)
    torch.testing.assert_close(filtered, low_frequency_prior(expected, noise, 4))
    same_step = start_latent(clean, noisiest, 981, torch.tensor(981), scheduler, noise, 1)
    torch.testing.assert_close(same_step, noisiest, rtol=1e-5, atol=1e-5)  # inversion steps = sampling steps


def test_restart_uses_the_official_betas():
    """run.py:307-315: x <- sqrt(1 - b) x + sqrt(b) z for b = betas[t_next + i], i < T / steps."""
    scheduler = make_scheduler("ddim", DDIMScheduler(beta_schedule="scaled_linear", steps_offset=1).config)
    scheduler.set_timesteps(50)
    t_next = scheduler.timesteps[11]  # the step from timesteps[10] = 781 lands here, at 761
    kept = 1.0
    for i in range(20):
        kept *= 1 - scheduler.betas[761 + i].item()
    latents = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(2))
    noised = renoise(latents, scheduler, t_next, torch.Generator().manual_seed(2))
    torch.testing.assert_close(noised, kept**0.5 * latents + (1 - kept) ** 0.5 * noise)
    one_later = scheduler.alphas_cumprod[781] / scheduler.alphas_cumprod[761]  # betas[762..781], the old choice
    assert abs(one_later.item() - kept) > 1e-4

    ones = torch.ones(1, 4, 8, 128, 128)  # in distribution, one draw equals the official draw per beta
    sequential, generator = ones.clone(), torch.Generator().manual_seed(3)
    for i in range(20):
        beta = scheduler.betas[761 + i]
        sequential = (1 - beta) ** 0.5 * sequential + beta**0.5 * torch.randn(ones.shape, generator=generator)
    folded = renoise(ones, scheduler, t_next, generator)
    for value in (sequential, folded):
        assert abs(value.mean().item() - kept**0.5) < 3e-3 and abs(value.std().item() - (1 - kept) ** 0.5) < 3e-3


def test_default_features_are_the_three_official_taps(method):
    assert DMTOptions().layers == list(OFFICIAL_LAYERS) == method.options.layers
    model = method.model
    latents = torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    text, t = model.encode_prompts(["a red circle"]), torch.tensor(500)
    calls = []
    handles = [model.unet.up_blocks[2].register_forward_hook(lambda *_: calls.append(1))]
    handles.append(model.unet.conv_out.register_forward_hook(lambda *_: calls.append(1)))
    videos = method.feature_videos(latents, t, text)
    for handle in handles:
        handle.remove()
    assert calls == []  # the UNet stopped after up_blocks.1's upsampler, its last module
    assert {name: tuple(video.shape) for name, video in videos.items()} == {
        "up_blocks.1.upsamplers.0": (1, 16, 8, 16, 16),
        "up_blocks.1.resnets.1.conv2": (1, 16, 8, 8, 8),
        "up_blocks.1.temp_convs.1": (1, 16, 8, 8, 8),
    }
    with model.capture_features(list(OFFICIAL_LAYERS)) as full:
        model.predict(latents, t, text)
    for name, video in videos.items():
        torch.testing.assert_close(video, full[name].unflatten(0, (1, 8)).transpose(1, 2))


def test_conv2_hook_reads_the_resnet_branch_before_the_skip(method):
    """guidance_utils.py:103-154 re-implements ResnetBlock2D to read conv2's output before the shortcut
    is added; restated here, it equals what a forward hook on `resnets[1].conv2` records."""
    model = method.model
    resnet = model.unet.up_blocks[1].resnets[1]
    seen = {}
    handle = resnet.register_forward_hook(lambda _m, inputs, _o: seen.update(inputs=inputs), with_kwargs=False)
    with model.capture_features(["up_blocks.1.resnets.1.conv2"]) as features:
        model.predict(torch.randn(1, 4, 8, 16, 16), torch.tensor(300), model.encode_prompts(["x"]))
    handle.remove()
    hidden, embedding = seen["inputs"]
    with torch.no_grad():
        branch = resnet.nonlinearity(resnet.norm1(hidden))
        branch = resnet.conv1(branch) + resnet.time_emb_proj(resnet.nonlinearity(embedding))[:, :, None, None]
        branch = resnet.conv2(resnet.dropout(resnet.nonlinearity(resnet.norm2(branch))))
    assert resnet.upsample is None and resnet.downsample is None and resnet.time_embedding_norm == "default"
    torch.testing.assert_close(features["up_blocks.1.resnets.1.conv2"], branch)


def test_features_stop_the_unet_after_the_last_hooked_block(method):
    model = method.model
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


def test_loss_sums_dmt_and_sma_over_the_three_features(method, monkeypatch):
    assert isinstance(method, DMT) and method.sma.global_weight == method.options.sma_global_weight
    latents = torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    text = method.model.encode_prompts(["x"])
    t = torch.tensor(700)
    reference = method.feature_videos(latents, t, text)
    output = method.feature_videos(latents.flip(2), t, text)
    seen = []
    original = SpectralMotionAlignment.terms

    def recording(self, target, prediction):
        seen.append((target, prediction))
        return original(self, target, prediction)

    monkeypatch.setattr(SpectralMotionAlignment, "terms", recording)
    terms = method.feature_loss(reference, output)
    assert len(seen) == 3
    for scaled_reference, _ in seen:
        torch.testing.assert_close(scaled_reference.square().mean(), torch.tensor(1.0))
    independent = SpectralMotionAlignment(
        global_weight=method.options.sma_global_weight, local_weight=method.options.sma_local_weight
    )
    sma = dmt = 0
    for name in OFFICIAL_LAYERS:
        scale = reference[name].square().mean().sqrt()
        sma = sma + independent(reference[name] / scale, output[name] / scale)
        means = [video.mean(dim=(3, 4))[0].T for video in (reference[name], output[name])]  # (f, c)
        cosine = torch.nn.functional.cosine_similarity
        cosines = torch.stack([cosine(means[1] - means[1][i], means[0] - means[0][i], dim=1) for i in range(8)])
        dmt = dmt + (1 - cosines.mean(dim=1)).mean()  # guidance_utils.py:26-40
    torch.testing.assert_close(terms["dmt"], dmt)
    torch.testing.assert_close(terms["sma"], sma)
    torch.testing.assert_close(terms["loss"], dmt + sma)
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
    assert not torch.equal(moved, start) and not moved.requires_grad and moved.dtype == torch.float32


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_guidance_is_close_to_fp32(model_dir, method, reference_latents, precision, monkeypatch):
    """bf16 autocast, and fp16 autocast with a gradient scaler (forced here: on a CPU fp16 falls back to fp32)."""
    model = method.model
    source, target = model.encode_prompts(["a red circle"]), model.encode_prompts(["a blue square"])
    t = torch.tensor(801)
    reference_noisy = model.scheduler.add_noise(reference_latents, torch.randn_like(reference_latents), t)
    start = torch.randn(reference_latents.shape, generator=torch.Generator().manual_seed(1))
    logs, moved = {}, {}
    for name in ("fp32", precision):
        guidance = DMT(model, dmt_config(model_dir, **{"dmt.iterations": 4, "dmt.precision": name}))
        if name == "fp16":
            assert guidance.compute_dtype == torch.float32  # the CPU fallback
            monkeypatch.setattr(DMT, "compute_dtype", torch.float16)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        assert next(iter(guidance.feature_videos(start, t, target).values())).dtype == dtype
        moved[name] = guidance.guide(start, t, reference_noisy, source, target, learning_rate=0.05)
        logs[name] = guidance.guidance_log
    full, half = logs["fp32"], logs[precision]
    assert ("grad_scale" in half[0]) == (precision == "fp16") and "grad_scale" not in full[0]
    for key in ("dmt", "sma", "loss"):
        assert [record[key] for record in half] == pytest.approx([record[key] for record in full], rel=0.02)
    assert half[-1]["loss"] < half[0]["loss"]
    assert moved[precision].dtype == torch.float32
    if precision == "fp16":
        assert all(record["grad_scale"] <= 2.0**16 for record in half)  # a fresh scaler starts at 2^16


def test_inversion_with_more_steps_is_read_at_the_sampling_timesteps(model_dir, reference_latents, monkeypatch):
    """10 inversion steps (timesteps 0, 100, ..., 900), 2 sampling steps (500, 0): the reference latents
    kept, those guidance reads and the start latent all come from a direct 10-step inversion."""
    config = dmt_config(
        model_dir, **{"generate.inversion_steps": 10, "dmt.guidance_fraction": 1.0, "dmt.iterations": 1}
    )
    method = build_method(config)
    model = method.model
    kept, read, started = [], {}, []
    original_keep, original_guide, original_sample = ReferenceLatents.keep, method.guide, method.sample

    def keep(self, t, latent):
        kept.append(t)
        original_keep(self, t, latent)

    def guide(latents, t, reference_latent, *args):
        read[int(t)] = reference_latent.clone()
        return original_guide(latents, t, reference_latent, *args)

    def sample(latents, *args):
        started.append(latents.clone())
        return original_sample(latents, *args)

    monkeypatch.setattr(ReferenceLatents, "keep", keep)
    monkeypatch.setattr(method, "guide", guide)
    monkeypatch.setattr(method, "sample", sample)
    method.generate(reference_latents, "a blue square", seed=4)
    source = model.encode_prompts([config.prompt])
    denoise = guided(model.predict, source, source, 1.0)
    direct = dict(ddim_inversion(denoise, reference_latents, model.scheduler.config, 10, progress=False))
    assert sorted(direct) == list(range(0, 1000, 100))
    assert sorted(kept) == sorted(read) == [0, 500]
    for t in (0, 500):
        torch.testing.assert_close(read[t], direct[t])
    noise = torch.randn(reference_latents.shape, generator=torch.Generator().manual_seed(4))
    expected = start_latent(reference_latents, direct[900], 900, torch.tensor(500), model.scheduler, noise, 4)
    torch.testing.assert_close(started[0], expected)


def test_random_draws_take_the_device_of_their_generator(method, reference_latents, monkeypatch):
    """Every draw passes a generator and the device it lives on (a CPU generator never meets CUDA tensors)."""
    draws = []
    original = torch.randn

    def spy(*args, generator=None, device=None, **kwargs):
        draws.append((generator, device))
        return original(*args, generator=generator, device=device, **kwargs)

    monkeypatch.setattr(torch, "randn", spy)
    method.generate(reference_latents, "a blue square", seed=1)
    assert len(draws) == 2  # the start's high frequencies, one restart
    assert all(generator is not None and torch.device(device) == generator.device for generator, device in draws)


def test_outputs_are_reproducible_and_sma_changes_them(model_dir, method, reference_latents):
    first = method.generate(reference_latents, "a blue square", seed=5)
    assert len(method.guidance_log) == 2  # 1 guided step x 2 iterations
    assert torch.equal(first, method.generate(reference_latents, "a blue square", seed=5))
    assert not torch.equal(first, method.generate(reference_latents, "a blue square", seed=6))
    without = build_method(dmt_config(model_dir, **{"sma.enabled": False}))
    assert not torch.allclose(first, without.generate(reference_latents, "a blue square", seed=5), atol=1e-4)
    on_disk = build_method(dmt_config(model_dir, **{"dmt.keep_on_disk": True}))
    assert not reference_latents.is_contiguous()  # as the VAE gives it: the stores must not change the layout
    assert torch.equal(first, on_disk.generate(reference_latents, "a blue square", seed=5))


@pytest.mark.parametrize("layers", [list(OFFICIAL_LAYERS), ["up_blocks.1.resnets.1.conv2"]])
def test_gradient_checkpointing_gives_the_same_video(model_dir, reference_latents, layers):
    """Also when the UNet stops inside a recomputed layer (a tap on a resnet's conv2, the last one)."""
    outputs = []
    for checkpointed in (True, False):
        config = dmt_config(model_dir, **{"dmt.layers": layers, "dmt.gradient_checkpointing": checkpointed})
        method = build_method(config)
        outputs.append(method.generate(reference_latents, "a blue square", seed=5))
        assert method.guidance_log[-1]["dmt"] > 0
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


def test_no_guidance_and_no_restart_is_plain_ddim_from_the_start_latent(model_dir, reference_latents):
    """With guidance and restart off, DMT is exactly the shared sampler from its initial latent."""
    config = dmt_config(
        model_dir,
        **{"dmt.guidance_fraction": 0.0, "dmt.restart": False, "generate.negative_prompt": "blurry"},
    )
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
    denoise = guided(model.predict, model.encode_prompts(["a blue square"]), model.encode_prompts(["blurry"]), 12.0)
    expected = sample(denoise, start, make_scheduler("ddim", model.scheduler.config), 2, progress=False)
    torch.testing.assert_close(output, expected, rtol=1e-4, atol=1e-4)


def test_recipe_holds_the_official_settings(model_dir):
    config = load_config(RECIPE, overrides={"model": str(model_dir)})
    generate, options = config.generate, config.options
    assert (generate.steps, generate.inversion_steps, generate.guidance_scale) == (50, 999, 10.0)
    assert generate.negative_prompt == "bad quality, distortions, unrealistic, distorted image, watermark, signature"
    assert options.layers == list(OFFICIAL_LAYERS) and options.precision == "fp16"
    assert (options.iterations, options.lr_start, options.lr_end, options.guidance_fraction) == (10, 0.007, 0.004, 0.4)
    assert config.video.frames == 24 and options.restart and options.low_pass_factor == 4


@pytest.mark.parametrize("use_sma", [True, False])
def test_transfer_command_writes_the_run_folder(model_dir, reference, tmp_path, use_sma):
    out = tmp_path / "run"
    arguments = ["transfer", str(reference), "--method", "dmt", "--model", str(model_dir), "--out", str(out)]
    arguments += ["--prompt", "a red circle", "--target", "a blue square", "--seed", "3"]
    arguments += ["--frames", "8", "--height", str(SIZE), "--width", str(SIZE)]
    arguments += [] if use_sma else ["--no-sma"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("generate: {steps: 2, inversion_steps: 4}\ndmt: {iterations: 1, guidance_fraction: 0.5}\n")
    assert main([*arguments, "--config", str(recipe)]) == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "comparison.mp4",
        "config.yaml",
        "guidance_log.json",
        "metrics.json",
        "reference.mp4",
        "run.json",
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
    with pytest.raises(SmaError, match=r"guidance_fraction must be in \[0, 1\]"):
        dmt_config(model_dir, **{"dmt.guidance_fraction": 1.5})
    with pytest.raises(SmaError, match=r"recipe key dmt\.layers must be a list"):
        dmt_config(model_dir, **{"dmt.layers": "up_blocks.1"})
    with pytest.raises(SmaError, match=r"dmt\.precision must be one of fp32, fp16, bf16, got 'fp8'"):
        dmt_config(model_dir, **{"dmt.precision": "fp8"})
    with pytest.raises(SmaError, match=r"^dmt\.layers: the UNet has no module named up_blocks\.9$"):
        build_method(dmt_config(model_dir, **{"dmt.layers": ["up_blocks.9"]}))
    message = (
        r"^the 10-step inversion \(generate\.inversion_steps\) misses timesteps \[333, 666\] of the 3-step "
        r"sampling \(generate\.steps\): .*\(DMT: 999\)$"
    )
    with pytest.raises(SmaError, match=message):
        build_method(dmt_config(model_dir, **{"generate.steps": 3, "generate.inversion_steps": 10}))
    with pytest.raises(SmaError, match=r"`generate.inversion_steps` must be from 1 to 1000 \(the training timesteps"):
        build_method(dmt_config(model_dir, **{"generate.inversion_steps": 1001}))
    code = main(["transfer", str(reference), "--method", "dmt", "--model", str(model_dir), "--out", str(tmp_path)])
    assert code == 2 and "give at least one target" in capsys.readouterr().err


def test_the_reference_is_inverted_once_for_all_targets(model_dir, reference_latents, monkeypatch):
    """At 999 steps the inversion is most of a DMT run: every target of a run reuses it."""
    import sma.methods.dmt as dmt_module

    calls = []
    original = dmt_module.unclipped_inversion
    monkeypatch.setattr(dmt_module, "unclipped_inversion", lambda *a, **k: calls.append(1) or original(*a, **k))
    method = build_method(dmt_config(model_dir, **{"dmt.keep_on_disk": True}))
    first = method.generate(reference_latents, "a blue square", seed=5)
    method.generate(reference_latents, "a green star", seed=6)
    assert len(calls) == 1
    fresh = build_method(dmt_config(model_dir, **{"dmt.keep_on_disk": True}))
    assert torch.equal(first, fresh.generate(reference_latents, "a blue square", seed=5))
    method.generate(reference_latents + 0.5, "a blue square", seed=5)  # another reference: inverted anew
    assert len(calls) == 3


def test_the_untuned_baseline_of_dmt_is_plain_sampling(model_dir, reference, tmp_path):
    """DMT trains nothing: its untuned baseline is its backbone sampling each target from fresh noise with the
    same settings, as any method's on that backbone (VMC's here), with no guidance toward the reference."""
    dmt = untuned(dmt_config(model_dir), reference, tmp_path / "dmt")
    plain = {"method": "vmc", "model": str(model_dir), "targets": ["a blue square"], "generate.steps": 2}
    plain |= {"video.frames": 8, "video.height": SIZE, "video.width": SIZE}
    (vmc,) = untuned(load_config(overrides=plain), reference, tmp_path / "vmc")
    assert (read_video(dmt[0].with_suffix(".gif")) == read_video(vmc.with_suffix(".gif"))).all()  # no codec noise


def test_guidance_within_a_memory_budget_gives_the_same_video(model_dir, reference_latents):
    """A roomy budget recomputes nothing; one between the weights and the unplanned peak some layers, whose estimate
    fits; one below the weights every layer, with one warning. The video is the same each time."""
    roomy = build_method(dmt_config(model_dir, **{"dmt.memory_budget_gb": 1000.0}))
    expected = roomy.generate(reference_latents, "a blue square", seed=5)
    plan = roomy.checkpointing_plan
    assert plan.fits and plan.checkpointed == [] and plan.unplanned_gib > plan.static_gib
    middle = (plan.static_gib + plan.unplanned_gib) / 2
    for budget in (middle, plan.static_gib / 2):
        method = build_method(dmt_config(model_dir, **{"dmt.memory_budget_gb": budget}))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            output = method.generate(reference_latents, "a blue square", seed=5)
        torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)
        planned = method.checkpointing_plan
        said = [warning for warning in caught if issubclass(warning.category, MemoryBudgetWarning)]
        if budget == middle:
            assert planned.fits and 0 < len(planned.checkpointed) < planned.layers and not said
            assert planned.estimate_gib <= budget
        else:
            assert not planned.fits and len(planned.checkpointed) == planned.layers and len(said) == 1


def test_a_zero_shot_run_takes_new_targets_through_generate(model_dir, reference, tmp_path, capsys):
    """Issue 46: `generate` sent a DMT run to --resume, and `transfer --resume` sent it back to --overwrite."""
    from sma.runs import transfer

    out, more = tmp_path / "run", tmp_path / "more"
    transfer(dmt_config(model_dir), reference, out)
    arguments = ["transfer", str(reference), "--method", "dmt", "--model", str(model_dir), "--out", str(out)]
    assert main([*arguments, "--target", "a green star", "--resume"]) == 2
    assert "generate more targets from its folder (sma generate --adapter RUN_FOLDER)" in capsys.readouterr().err
    targets = ["--target", "a blue square", "--target", "a green star"]
    assert main(["generate", "--adapter", str(out), *targets, "--out", str(more)]) == 0
    made = sorted(path.name for path in (more / "videos").glob("*.gif"))
    assert made == ["00-a-blue-square.gif", "01-a-green-star.gif"]
    first, again = (read_video(folder / "videos" / "00-a-blue-square.gif") for folder in (out, more))
    assert (first == again).all()  # the run's own target, made again as the run made it
