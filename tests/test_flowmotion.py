"""FlowMotion, zero-shot, on tiny models of every backbone: the official guidance restated from run.py and compared,
no gradient into the model, Euler in DDIM's coordinates is DDIM, and the command that writes the video."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UniPCMultistepScheduler, WanPipeline

from sma.cli import main
from sma.methods import build_method
from sma.methods.flowmotion import frame_differences
from sma.recipes import load_config
from sma.sampling import EulerSchedule, gaussian_like, guided, make_scheduler, sample
from sma.video import MovingObject, read_video, synthetic_video, write_video
from tiny_models import build_motion_adapter, build_text_to_image, build_text_to_video
from tiny_show1 import build_show1_base
from tiny_wan import WAN_SCHEDULER, build_wan

RECIPES = Path(__file__).parents[1] / "configs"


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory):
    return build_wan(tmp_path_factory.mktemp("wan") / "model")


@pytest.fixture(scope="module")
def unet_dir(tmp_path_factory):
    return build_text_to_video(tmp_path_factory.mktemp("unet3d"))


@pytest.fixture(scope="module")
def show1_dir(tmp_path_factory):
    return build_show1_base(tmp_path_factory.mktemp("show1") / "model")


def flowmotion(model, frames, **overrides):
    values = {"method": "flowmotion", "model": str(model), "targets": ["a blue square"], "video.frames": frames}
    values |= {"video.height": 32, "video.width": 32, "generate.steps": 4, "flowmotion.guidance_steps": 2}
    return build_method(load_config(overrides=values | overrides))


# run.py restated (HKUST-LongGroup/FlowMotion, f5b4dcf), for one video of batch 1 and a velocity function of the latent
def official_motion_difference(latents):  # run.py:118-139
    frames = latents[0].permute(1, 2, 3, 0)
    maps = [torch.abs(frames[1:] - frames[:-1])]
    for center in range(len(frames)):
        others = frames[[i for i in range(len(frames)) if i != center]]
        maps.append(torch.abs(frames[center].unsqueeze(0).expand_as(others) - others))
    return torch.stack(maps, dim=0)


def official_decompose(v_tar, v_src, epsilon=1e-8):  # run.py:141-150
    dot_product = torch.sum(v_tar * v_src, dim=1, keepdim=True)
    norm_src_sq = torch.sum(v_src * v_src, dim=1, keepdim=True)
    parallel = dot_product / (norm_src_sq + epsilon) * v_src
    return parallel, v_tar - parallel


def official_guidance(target, clean, random_noise, t_i, t_0, step, fwd_noise, velocity, source_velocity):
    """run.py:224-285 with its defaults: 3 Adam steps at lr 0.003, alpha 20, beta 5, regulate scale 0.1."""
    optimized = target.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([optimized], lr=0.003)
    v_mean = (target - random_noise) / (t_i - t_0) if step > 0 else None
    source_latent = (1 - t_i) * clean + t_i * fwd_noise
    with torch.no_grad():  # calc_velocity is decorated with it (run.py:93)
        source = source_latent + (0 - t_i) * source_velocity(source_latent)
    diff_source = official_motion_difference(source)
    for _ in range(3):
        optimizer.zero_grad()
        with torch.no_grad():
            v_tar = velocity(optimized)
        if v_mean is not None:
            parallel, perpendicular = official_decompose(v_tar, v_mean)
            v_tar = parallel + 0.1 * perpendicular
        prediction = optimized + (0 - t_i) * v_tar
        loss = 20 * F.mse_loss(source, prediction) + 5 * F.mse_loss(diff_source, official_motion_difference(prediction))
        loss.backward()
        optimizer.step()
    return optimized.detach()


def pinned_flow_timesteps(steps, num_train_timesteps=1000, flow_shift=3.0):
    """run.py:189-190, `pipe.scheduler.set_timesteps` of the Hub's UniPC (flow sigmas, final sigma zero) under the
    official pin, diffusers 0.35.1 (requirements.txt:4): scheduling_unipc_multistep.py:388-392 and 415 at v0.35.1."""
    alphas = np.linspace(1, 1 / num_train_timesteps, steps + 1)
    sigmas = 1.0 - alphas
    sigmas = np.flip(flow_shift * sigmas / (1 + (flow_shift - 1) * sigmas))[:-1].copy()
    timesteps = (sigmas * num_train_timesteps).copy()
    return torch.from_numpy(timesteps).to(dtype=torch.int64)


def official_process(method, clean, target, seed, steps, guidance_steps):
    """run.py:186-219: Euler on the model scheduler's timesteps, guided first, drawing noise in the official order."""
    model, generator = method.model, torch.Generator().manual_seed(seed)
    condition, negative = model.encode_prompts([target]), model.encode_prompts([""])
    empty = model.encode_prompts([""])
    velocity = guided(method.predict, condition, negative, method.config.generate.guidance_scale)
    timesteps = pinned_flow_timesteps(steps, flow_shift=model.scheduler.config.flow_shift)
    random_noise = gaussian_like(clean, generator)
    latent = random_noise.clone()
    for i, t in enumerate(timesteps):
        t_i = t / 1000
        t_next = timesteps[i + 1] / 1000 if i + 1 < len(timesteps) else torch.zeros_like(t_i)
        if i < guidance_steps:
            fwd_noise = gaussian_like(clean, generator)
            latent = official_guidance(
                latent,
                clean,
                random_noise,
                t_i,
                timesteps[0] / 1000,
                i,
                fwd_noise,
                lambda x, t=t: velocity(x, t),
                lambda x, t=t: method.predict(x, t, empty),
            )
        with torch.no_grad():
            latent = latent + (t_next - t_i) * velocity(latent, t)
    return latent


def test_frame_differences_give_the_official_loss():
    first, second = torch.randn(2, 1, 3, 5, 4, 6).unbind(0)
    ours = F.mse_loss(frame_differences(first), frame_differences(second))
    theirs = F.mse_loss(official_motion_difference(first), official_motion_difference(second))
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)


@pytest.mark.parametrize("guidance_steps", [1, 3])
def test_generation_is_the_official_loop(wan_dir, guidance_steps):
    """Every guided step (the first unregulated, the next ones regulated) and every Euler step, on the tiny Wan."""
    method = flowmotion(wan_dir, 9, **{"flowmotion.guidance_steps": guidance_steps, "generate.guidance_scale": 6.0})
    clean = torch.randn(method.model.latent_shape(9, 32, 32))
    official = official_process(method, clean, "a blue square", 5, 4, guidance_steps)
    ours = method.generate(clean, "a blue square", 5)
    assert len(method.guidance_log) == 3 * guidance_steps
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-5)
    unguided = flowmotion(wan_dir, 9, **{"flowmotion.guidance_steps": 0}).generate(clean, "a blue square", 5)
    assert (ours - unguided).abs().max() > 1e-3  # the guidance moved the video


@pytest.mark.parametrize("flow_shift", [1.0, 3.0, 5.0, 12.0])
def test_flow_timesteps_are_the_official_pins(flow_shift):
    """The timesteps run.py's diffusers (0.35.1) gives, which the installed one does not (50 steps, shift 3: 40 differ,
    by up to 3)."""
    config = UniPCMultistepScheduler(**WAN_SCHEDULER | {"flow_shift": flow_shift}).config
    for steps in range(1, 101):
        torch.testing.assert_close(
            EulerSchedule(config, steps, "cpu").timesteps, pinned_flow_timesteps(steps, 1000, flow_shift)
        )
    installed = UniPCMultistepScheduler.from_config(config)
    installed.set_timesteps(50)
    assert (installed.timesteps != pinned_flow_timesteps(50, 1000, flow_shift)).any()


@pytest.mark.parametrize(("tokens", "precision"), [(None, None), (512, "bf16")])
def test_wan_prompts_are_encoded_as_run_py_encodes_them(wan_dir, tokens, precision):
    """run.py:158-169 calls WanPipeline.encode_prompt at its default length, 226 tokens (pipeline_wan.py:206 at
    v0.35.1); `flowmotion.text_tokens: 512` encodes as WanPipeline's call does."""
    overrides = {} if tokens is None else {"flowmotion.text_tokens": tokens, "flowmotion.text_precision": precision}
    model = flowmotion(wan_dir, 9, **overrides).model
    pipeline = WanPipeline(model.tokenizer, model.text_encoder, model.vae, model.scheduler, model.unet)
    expected, _ = pipeline.encode_prompt("a blue square", do_classifier_free_guidance=False, device="cpu")
    if tokens is not None:
        expected, _ = pipeline.encode_prompt("a blue square", None, False, max_sequence_length=tokens, device="cpu")
    torch.testing.assert_close(model.encode_prompts(["a blue square"]), expected)
    assert expected.shape[1] == (tokens or 226)


def test_no_gradient_reaches_the_model(wan_dir):
    method = flowmotion(wan_dir, 9, **{"flowmotion.motion_loss": "both", "sma.levels": 1})
    grad_modes = []
    handle = method.model.unet.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    try:
        latents = method.generate(torch.randn(method.model.latent_shape(9, 32, 32)), "a blue square", 0)
    finally:
        handle.remove()
    assert len(grad_modes) == 2 * 3 + 4 + 2  # 2 guided steps: source + 3 iterations; 4 Euler steps (cfg batched)
    assert not any(grad_modes) and not latents.requires_grad
    assert all(parameter.grad is None for parameter in method.model.unet.parameters())
    assert {"latent", "difference", "sma", "loss"} <= set(method.guidance_log[0])


@pytest.mark.parametrize(("sma", "terms"), [(True, {"latent", "sma"}), (False, {"latent", "difference"})])
def test_sma_replaces_the_difference_term_and_no_sma_is_the_official_loss(wan_dir, sma, terms):
    method = flowmotion(wan_dir, 9, **{"flowmotion.motion_loss": "sma", "sma.enabled": sma, "sma.levels": 1})
    method.generate(torch.randn(method.model.latent_shape(9, 32, 32)), "a blue square", 0)
    logged = {name for name in method.guidance_log[0] if not name.startswith("sma_")}
    assert logged == terms | {"timestep", "iteration", "loss"}


@pytest.mark.parametrize("prediction", ["flow", "epsilon", "v_prediction"])
def test_estimate_recovers_the_clean_video_from_the_true_velocity(prediction):
    """x0 = y - sigma u, u the model output turned into the velocity, for a perfect model of each kind."""
    if prediction == "flow":
        config = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True).config
    else:
        config = DDIMScheduler(prediction_type=prediction).config
    schedule = EulerSchedule(config, 5, "cpu", flow_shift=3.0)
    clean, noise = torch.randn(2, 1, 4, 3, 8, 8, dtype=torch.float64).unbind(0)
    for index in range(5):
        noisy = schedule.noised(clean, noise, index)
        abar = torch.tensor(schedule.scales[index] ** 2, dtype=torch.float64)
        output = {
            "flow": noise - clean,
            "epsilon": noise,
            "v_prediction": abar.sqrt() * noise - (1 - abar).sqrt() * clean,
        }[prediction]
        velocity = schedule.velocity(output, noisy, index)
        torch.testing.assert_close(schedule.estimate(noisy, velocity, index), clean)


def test_unguided_euler_on_a_noise_schedule_is_ddim(unet_dir):
    method = flowmotion(unet_dir, 8, **{"generate.steps": 5})
    ours = method.generate_untuned("a blue square", 2)
    model = method.model
    denoise = guided(method.predict, *(model.encode_prompts([p]) for p in ("a blue square", "")), 12.0)
    like = torch.empty(model.latent_shape(8, 32, 32))
    ddim = sample(denoise, method.fresh_noise(like, 2), make_scheduler("ddim", model.scheduler.config), 5)
    torch.testing.assert_close(ours, ddim, rtol=1e-4, atol=1e-4)


def test_euler_steps_on_show1_threshold_the_estimate_as_its_scheduler_does(show1_dir):
    """Each Euler step is DDIM's `scheduler.step` with Show-1's (DeepFloyd IF's) dynamic thresholding of the estimate,
    which changes the steps. Step by step from the scheduler's own latents: on a random tiny pixel model at guidance
    9, float32 rounding grows tenfold per step, so whole runs part by more than rounding."""
    method = flowmotion(show1_dir, 8, **{"generate.steps": 5})
    model, config = method.model, method.model.scheduler.config
    assert config.thresholding and (config.sample_max_value, config.dynamic_thresholding_ratio) == (1.5, 0.95)
    denoise = guided(method.predict, *(model.encode_prompts([p]) for p in ("a blue square", "")), 9.0)
    schedule = EulerSchedule(config, 5, "cpu")
    unlimited = EulerSchedule({**config, "thresholding": False, "clip_sample": False}, 5, "cpu")
    scheduler = make_scheduler("ddim", config)
    scheduler.set_timesteps(5)
    latents, changes = method.fresh_noise(torch.empty(model.latent_shape(8, 32, 32)), 2), []
    for index, t in enumerate(scheduler.timesteps):
        output = denoise(latents, t)
        expected = scheduler.step(output, t, latents).prev_sample
        ours = schedule.step(latents, output, index)  # estimates ~1/sqrt(abar) in float32: rounding to ~1e-4
        torch.testing.assert_close(ours, expected, rtol=1e-3, atol=1e-3)
        changes.append((unlimited.step(latents, output, index) - expected).abs().max())
        latents = expected
    assert max(changes) > 0.1


def test_the_recipe_holds_the_official_settings():
    config = load_config(RECIPES / "flowmotion-wan-1.3b.yaml")
    options, generate = config.options, config.generate
    assert (config.video.frames, config.video.height, config.video.width) == (49, 480, 720)
    assert (generate.steps, generate.guidance_scale, generate.precision) == (50, 6.0, "fp16")
    assert generate.negative_prompt == "" and generate.sampler == "euler"
    assert (options.guidance_steps, options.iterations, options.learning_rate) == (10, 3, 0.003)
    assert (options.latent_weight, options.difference_weight, options.regulate_scale) == (20.0, 5.0, 0.1)
    assert (options.source, options.motion_loss, options.flow_shift) == ("latent_prediction", "official", None)
    assert (options.text_tokens, options.text_precision) == (226, "fp16")


def backbone_models(kind, folder):
    if kind == "wan":
        return ["--model", str(build_wan(folder / "model"))], "9"
    if kind == "animatediff":
        adapter = build_motion_adapter(folder / "adapter")
        return ["--model", str(build_text_to_image(folder / "model")), "--motion-adapter", str(adapter)], "8"
    if kind == "show1":
        return ["--model", str(build_show1_base(folder / "model"))], "8"
    return ["--model", "embedded"], "8"


@pytest.mark.parametrize("kind", ["embedded", "wan", "animatediff", "show1"])
def test_transfer_writes_the_video_without_training(kind, reference, tmp_path):
    model, frames = backbone_models(kind, tmp_path)
    if kind == "wan":  # 4k + 1 frames
        clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=9, height=32, width=32)
        reference = write_video(tmp_path / "circle.mp4", clip.frames)
    out = tmp_path / "run"
    arguments = ["transfer", str(reference), "--method", "flowmotion", *model, "--target", "a blue square"]
    arguments += ["--out", str(out), "--frames", frames, "--sampling-steps", "3", "--motion-loss", "both"]
    arguments += ["--sma-levels", "1"] + (["--height", "32", "--width", "32"] if kind != "embedded" else [])
    assert main(arguments) == 0
    assert not (out / "adapter").exists() and (out / "videos" / "00-a-blue-square.mp4").is_file()
    video = read_video(out / "videos" / "00-a-blue-square.mp4")
    assert len(video) == int(frames) and video.shape[-1] == 3
    guidance = json.loads((out / "guidance_log.json").read_text())
    assert len(guidance) == 3 * 3 and "sma" in guidance[0] and "difference" in guidance[0]  # 3 guided steps of 10


def test_flowmotion_errors(reference, tmp_path, capsys):
    base = ["transfer", str(reference), "--method", "flowmotion", "--target", "a", "--out", str(tmp_path / "run")]
    assert main([*base, "--model", "embedded", "--steps", "5"]) == 2
    assert "trains nothing" in capsys.readouterr().err
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("flowmotion: {source: noise}\n")
    assert main([*base, "--model", "embedded", "--config", str(recipe)]) == 2
    assert "flowmotion.source must be one of latent_prediction, clean_latent" in capsys.readouterr().err
