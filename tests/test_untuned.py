"""The untuned baseline (`sma.runs.untuned`, `generate.untuned`): each target sampled by the method's backbone
before any training, on tiny models of the real classes."""

import json

import pytest
import torch
from diffusers import DDIMScheduler

from sma.cli import main
from sma.errors import SmaError
from sma.methods import build_method
from sma.recipes import load_config
from sma.runs import untuned, untuned_method
from sma.video import MovingObject, read_video, synthetic_video, write_video

SIZE = 32


def config_of(model, method="vmc", **overrides):
    values = {
        "method": method,
        "model": str(model),
        "prompt": "a red circle moving right",
        "targets": ["a blue square", "a green star"],
        "video.frames": 8,
        "video.height": SIZE,
        "video.width": SIZE,
        "seed": 5,
        "generate.steps": 3,
        "generate.inversion_steps": 3,
        "generate.guidance_scale": 6.0,
        "generate.negative_prompt": "blurry",
    }
    return load_config(overrides=values | overrides)


@torch.no_grad()
def ddim_by_hand(model, prompt, negative, seed, steps, guidance):
    """DDIM with classifier-free guidance written out from diffusers' UNet and scheduler, from CPU noise."""
    noise = torch.randn(model.latent_shape(8, SIZE, SIZE), generator=torch.Generator().manual_seed(seed))
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(steps)
    text = torch.cat([model.encode_prompts([negative]), model.encode_prompts([prompt])])
    latents = noise
    for t in scheduler.timesteps:
        unconditional, conditional = model.unet(torch.cat([latents] * 2), t, encoder_hidden_states=text).sample.chunk(2)
        latents = scheduler.step(unconditional + guidance * (conditional - unconditional), t, latents).prev_sample
    return latents


def test_untuned_is_ddim_from_seeded_noise_and_reproducible(model_dir, reference, tmp_path):
    config = config_of(model_dir)
    paths = untuned(config, reference, tmp_path / "a")
    assert [path.relative_to(tmp_path / "a").as_posix() for path in paths] == [
        "untuned/00-a-blue-square.mp4",
        "untuned/01-a-green-star.mp4",
    ]
    assert all(path.with_suffix(".gif").is_file() for path in paths)
    again = untuned(config, reference, tmp_path / "b")
    gifs = [[read_video(path.with_suffix(".gif")) for path in run] for run in (paths, again)]  # gif: no codec noise
    assert all((one == two).all() for one, two in zip(*gifs, strict=True))
    assert not (gifs[0][0] == gifs[0][1]).all()
    with pytest.raises(SmaError, match=r"00-a-blue-square\.mp4 exists; set `overwrite`"):
        untuned(config, reference, tmp_path / "a")

    method = build_method(config)
    before = {name: tensor.clone() for name, tensor in method.model.unet.state_dict().items()}
    latents = method.generate_untuned("a green star", config.seed + 1)  # the second target: seed + 1
    expected = ddim_by_hand(method.model, "a green star", "blurry", config.seed + 1, 3, 6.0)
    torch.testing.assert_close(latents, expected, atol=1e-5, rtol=0)
    assert method.trainable == {} and not any(p.requires_grad for p in method.model.unet.parameters())
    assert all(torch.equal(before[name], tensor) for name, tensor in method.model.unet.state_dict().items())
    written = write_video(tmp_path / "by-hand.gif", method.model.decode_latents(expected))
    assert (read_video(written) == gifs[0][1]).all()


def test_transfer_writes_the_untuned_baseline_beside_the_outputs(model_dir, reference, tmp_path, capsys):
    out = tmp_path / "run"
    arguments = ["transfer", str(reference), "--model", str(model_dir), "--out", str(out), "--untuned"]
    arguments += ["--prompt", "a red circle moving right", "--target", "a green star"]
    arguments += ["--frames", "8", "--height", str(SIZE), "--width", str(SIZE), "--steps", "2", "--seed", "5"]
    arguments += ["--sampling-steps", "3", "--inversion-steps", "3"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("generate: {guidance_scale: 6.0, negative_prompt: blurry}\ntrain: {learning_rate: 0.01}\n")
    assert main([*arguments, "--config", str(recipe)]) == 0
    assert "untuned/00-a-green-star.mp4: motion fidelity" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    (entry,) = metrics["untuned"]
    assert entry["video"] == "untuned/00-a-green-star.mp4"
    assert entry["robust_motion_fidelity"] is None or -1 <= entry["robust_motion_fidelity"] <= 1  # None: nothing moved
    assert metrics["phases"]["untuned"]["steps"] == 3 and len(metrics["outputs"]) == 1
    # the untuned model is the backbone as loaded: the trained weights play no part
    # compared as gifs: x264 now and then encodes the same frames to another stream (see write_video)
    (standalone,) = untuned(config_of(model_dir, targets=["a green star"]), reference, tmp_path / "standalone")
    baseline = read_video((out / entry["video"]).with_suffix(".gif"))
    assert (baseline == read_video(standalone.with_suffix(".gif"))).all()
    assert not (baseline == read_video((out / metrics["outputs"][0]["video"]).with_suffix(".gif"))).all()
    # one row per target: reference, untuned, output
    assert read_video(out / "comparison.mp4").shape[2] == 3 * SIZE + 2 * 4


def test_controlvideo_untuned_follows_the_references_depth(sd_dir, controlnet_dir, depth_model_dir, tmp_path):
    """The reference reaches the untuned ControlVideo only as the depth of its frames: another reference moves
    the output, and the model holds the depth the depth model gives for it."""
    depth = {"controlvideo.controlnet": str(controlnet_dir), "controlvideo.depth_model": str(depth_model_dir)}
    config = config_of(sd_dir, "controlvideo", targets=["a blue square"], **depth)
    outputs = []
    for motion in ("linear", "zigzag"):
        clip = synthetic_video(MovingObject("circle", "red", motion), num_frames=8, height=SIZE, width=SIZE)
        pixels = torch.from_numpy(clip.frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        method = untuned_method(config, "cpu", clip=pixels)
        assert torch.equal(method.model.control, method.condition_on(pixels)["depth"])
        outputs.append(method.generate_untuned("a blue square", 5))
    assert (outputs[0] - outputs[1]).abs().max() > 1e-3  # exactly 0 were the depth ignored
    (path,) = untuned(config, write_video(tmp_path / "reference.mp4", clip.frames), tmp_path / "run")
    assert read_video(path).shape == (8, SIZE, SIZE, 3)


def test_transfer_untuned_generates_as_the_method_would_with_nothing_trained(model_dir, reference, tmp_path):
    """`transfer(tune=False)`, the benchmark's control: the method's own generation (its inversion of the
    reference, noise prior and sampler) on the backbone as loaded, with no adapter written."""
    from sma.runs import load_reference, transfer

    config = config_of(model_dir, **{"generate.noise_prior": 0.5})
    out = transfer(config, reference, tmp_path / "run", tune=False)
    assert not (out / "adapter").exists() and (out / "reference.mp4").is_file()
    method = untuned_method(config, "cpu")
    latents = method.model.encode_video(load_reference(reference, config))
    for index, target in enumerate(config.targets):
        expected = method.model.decode_latents(method.generate(latents, target, config.seed + index))
        written = read_video(out / "videos" / f"{index:02d}-{target.replace(' ', '-')}.gif")  # gif: no codec noise
        assert written.shape == (8, SIZE, SIZE, 3)
        assert (written == read_video(write_video(tmp_path / f"{index}.gif", expected))).all()
    with pytest.raises(SmaError, match="trains nothing, so there is nothing to resume"):
        transfer(config, reference, tmp_path / "run", tune=False, resume=True)


def test_controlvideo_transfer_untuned_is_conditioned_on_the_references_depth(
    sd_dir, controlnet_dir, depth_model_dir, reference, tmp_path
):
    from sma.runs import transfer

    depth = {"controlvideo.controlnet": str(controlnet_dir), "controlvideo.depth_model": str(depth_model_dir)}
    config = config_of(sd_dir, "controlvideo", targets=["a blue square"], **depth)
    out = transfer(config, reference, tmp_path / "run", tune=False)
    assert read_video(out / "videos" / "00-a-blue-square.mp4").shape == (8, SIZE, SIZE, 3)
    assert not (out / "adapter").exists()
