"""SMA's share of the objective under control (`sma.share`), and terms that keep their scale (`sma.scale_free`)."""

import json
import random

import pytest
import torch

from sma.cli import main
from sma.methods import build_method
from sma.objectives import weighted_terms, with_sma
from sma.objectives.total import ShareControl
from sma.recipes import load_config
from sma.spectral import SpectralMotionAlignment
from sma.video import MovingObject, synthetic_video, write_video
from tiny_wan import build_wan


def test_the_share_is_exact_at_steady_losses_and_tracks_noisy_ones():
    control = ShareControl(0.3)
    for _ in range(3):
        scale = control.scale(2.0, 50.0)
        assert scale * 50.0 / (2.0 + scale * 50.0) == pytest.approx(0.3)
    draw, control, sma_sum, loss_sum = random.Random(0), ShareControl(0.3), 0.0, 0.0
    for _ in range(400):
        base, sma = draw.uniform(0.5, 1.5), draw.uniform(20.0, 80.0)
        sma *= control.scale(base, sma)
        sma_sum, loss_sum = sma_sum + sma, loss_sum + base + sma
    assert sma_sum / loss_sum == pytest.approx(0.3, abs=0.02)
    with pytest.raises(ValueError, match="the share must be in"):
        ShareControl(1.0)


def test_the_runs_share_holds_after_twenty_steps_of_heavy_tailed_losses():
    """Base and SMA that move against each other across timesteps, heavy-tailed, as VMC's do: 95% of 20-step runs end
    within 0.05 of the share asked for (running averages of each term: 0.14 off)."""
    draw, gaps = random.Random(0), []
    for _ in range(200):
        control, sma_sum, loss_sum = ShareControl(0.3), 0.0, 0.0
        for _ in range(20):
            level = draw.lognormvariate(0.0, 0.5)
            base, sma = 0.01 * level, 1.0 / level
            sma *= control.scale(base, sma)
            sma_sum, loss_sum = sma_sum + sma, loss_sum + base + sma
        gaps.append(abs(sma_sum / loss_sum - 0.3))
    assert sorted(gaps)[189] < 0.05


def test_with_sma_scales_sma_to_the_share_and_the_scale_carries_no_gradient():
    reference = torch.randn(1, 2, 8, 6, 6)
    prediction = (reference + 0.3 * torch.randn_like(reference)).requires_grad_(True)
    sma = SpectralMotionAlignment(0.4, 0.2)
    base = (prediction - reference).pow(2).mean()
    terms = with_sma({"base": base}, [sma.terms(reference, prediction)], ShareControl(0.2))
    assert (terms["sma"] / terms["loss"]).item() == pytest.approx(0.2, rel=1e-5)
    (gradient,) = torch.autograd.grad(terms["loss"], prediction)
    held = (prediction - reference).pow(2).mean() + terms["sma_scale"].item() * sma(reference, prediction)
    torch.testing.assert_close(gradient, torch.autograd.grad(held, prediction)[0])


def test_scale_free_terms_keep_their_size_across_resolutions_and_frame_counts():
    """Each term's largest over smallest value across 32-128 pixels and 8 or 16 frames of one pair of motions, as
    benchmarks/sma_share.py measures it."""
    from benchmark_scripts import load_script

    term_spread = load_script("sma_share").term_spread
    authors, scale_free = term_spread(False), term_spread(True)
    assert authors["local_amplitude"] > 2.5  # the unnormalised FFT: grows with height x width
    assert scale_free["local_amplitude"] < 1.2 and scale_free["global_motion"] < 1.25


def recorded_share(run_dir) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["sma_share"]


@pytest.mark.parametrize("model", ["tiny", "embedded"])
def test_a_training_run_reaches_the_share_asked_for(model, model_dir, reference, tmp_path):
    out = tmp_path / "run"
    source = str(model_dir) if model == "tiny" else "embedded"
    arguments = ["train", str(reference), "--method", "vmc", "--model", source, "--out", str(out)]
    arguments += ["--prompt", "a red circle", "--steps", "20", "--sma-share", "0.3", "--frames", "8"]
    arguments += ["--height", "32", "--width", "32"] if model == "tiny" else []
    assert main(arguments) == 0
    assert recorded_share(out) == pytest.approx(0.3, abs=0.05)
    losses = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert all(record["sma_scale"] >= 0 for record in losses) and losses[-1]["sma_scale"] > 0


def test_a_guided_run_reaches_the_share_asked_for(tmp_path):
    clip_path = write_video(
        tmp_path / "circle.mp4",
        synthetic_video(MovingObject("circle", "red", "linear"), num_frames=9, height=32, width=32).frames,
    )
    out = tmp_path / "run"
    arguments = ["transfer", str(clip_path), "--method", "flowmotion", "--model", str(build_wan(tmp_path / "wan"))]
    arguments += ["--target", "a", "--out", str(out), "--frames", "9", "--height", "32", "--width", "32"]
    arguments += ["--sampling-steps", "12", "--motion-loss", "both", "--sma-levels", "1", "--sma-share", "0.3"]
    assert main(arguments) == 0
    assert recorded_share(out) == pytest.approx(0.3, abs=0.05)


def test_a_share_outside_zero_to_one_is_a_one_line_error(reference, tmp_path, capsys):
    arguments = ["train", str(reference), "--model", "embedded", "--out", str(tmp_path / "run"), "--sma-share", "1.5"]
    assert main(arguments) == 2
    assert "sma settings: the share must be in (0, 1), got 1.5" in capsys.readouterr().err


def test_weighted_terms_are_the_batch_mean_of_each_samples_terms_times_its_weight():
    sma = SpectralMotionAlignment(0.4, 0.2)
    target, prediction = torch.randn(2, 2, 2, 8, 6, 6).unbind(0)
    together = sma.terms(target, prediction)
    torch.testing.assert_close(weighted_terms(sma, target, prediction, torch.ones(2)).total, together.total)
    first, second = (sma.terms(target[i : i + 1], prediction[i : i + 1]) for i in (0, 1))
    weighted = weighted_terms(sma, target, prediction, torch.tensor([0.25, 1.0]))
    torch.testing.assert_close(weighted.local_phase, (0.25 * first.local_phase + second.local_phase) / 2)


def test_alpha_bar_weighting_multiplies_a_steps_sma_by_its_signal(model_dir):
    def loss_terms(weighting):
        overrides = {"method": "vmc", "model": str(model_dir), "prompt": "a", "targets": ["b"], "video.frames": 8}
        overrides |= {"video.height": 32, "video.width": 32, "sma.timestep_weight": weighting}
        method = build_method(load_config(overrides=overrides))
        method.prepare()
        latents = torch.randn(method.model.latent_shape(8, 32, 32), generator=torch.Generator().manual_seed(1))
        text = method.model.encode_prompts(["a"])
        _, timesteps, _ = method.noised(latents, torch.Generator().manual_seed(7))
        abar = method.model.scheduler.alphas_cumprod[timesteps].item()
        return method.loss(latents, text, torch.Generator().manual_seed(7)), abar

    (plain, abar), (weighted, _) = loss_terms("none"), loss_terms("alpha_bar")
    assert weighted["sma"].item() == pytest.approx(abar * plain["sma"].item(), rel=1e-5)
    torch.testing.assert_close(weighted["vmc"], plain["vmc"])


def test_timestep_weighting_is_refused_where_nothing_trains(reference, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("sma: {timestep_weight: alpha_bar}\nflowmotion: {motion_loss: both}\n")
    arguments = ["transfer", str(reference), "--method", "flowmotion", "--model", "embedded", "--target", "a"]
    assert main([*arguments, "--out", str(tmp_path / "run"), "--config", str(recipe)]) == 2
    assert "flowmotion trains nothing: remove it" in capsys.readouterr().err
