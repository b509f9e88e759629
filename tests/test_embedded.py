"""The embedded model's world and training recipe (the shipped weights are exercised by `sma demo`)."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from sma.backbones.text_to_video import TextToVideoModel
from sma.embedded.train import cosine_decay, foreground, latent_foreground, main
from sma.embedded.world import FRAMES, SIZE, measure, random_clip, reference_clip, vocabulary
from sma.video.frames import frames_to_tensor
from sma.video.synthetic import MovingObject


def test_every_prompt_word_is_in_the_vocabulary():
    words = set(vocabulary())
    rng = np.random.default_rng(123)  # other clips than the ones the vocabulary was read from
    for _ in range(500):
        _, prompt = random_clip(rng)
        assert set(prompt.replace(",", " ").split()) <= words, prompt


def test_clips_are_reproducible_from_the_generator():
    first, prompt = random_clip(np.random.default_rng(7))
    second, same_prompt = random_clip(np.random.default_rng(7))
    assert prompt == same_prompt
    assert np.array_equal(first.frames, second.frames)
    assert first.frames.shape == (FRAMES, SIZE, SIZE, 3)


def test_measure_tells_a_perfect_transfer_from_a_copy_and_from_another_motion():
    path = {"motion": "zigzag", "start": (0.25, 0.5), "end": (0.75, 0.5), "size": 0.35}
    clip = reference_clip(MovingObject("circle", "red", **path))
    transfer = reference_clip(MovingObject("square", "blue", **path)).frames
    perfect = measure(transfer, clip.frames, clip, "blue", "square")
    assert perfect["motion_fidelity"] > 0.9
    assert perfect["trajectory_error_px"] < 1.0
    assert perfect["appearance_accuracy"] == 1.0
    assert perfect["reference_colour_fraction"] == 0.0 < perfect["target_colour_fraction"]
    copy = measure(clip.frames, clip.frames, clip, "blue", "square")
    assert copy["appearance_accuracy"] == 0.0
    assert copy["target_colour_fraction"] == 0.0 < copy["reference_colour_fraction"]
    moved = reference_clip(MovingObject("square", "blue", "linear", start=(0.75, 0.25), end=(0.25, 0.75), size=0.35))
    elsewhere = measure(moved.frames, clip.frames, clip, "blue", "square")
    assert elsewhere["motion_fidelity"] < 0.5 and elsewhere["trajectory_error_px"] > 5


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (0.03, 1.0),
        (0.515, 0.1 + 0.9 * 0.5),  # halfway through the decay
        (1.0, 0.1),
        (0.25, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.22 / 0.97))),
    ],
)
def test_cosine_decay_follows_its_formula(progress, expected):
    assert cosine_decay(progress) == pytest.approx(expected, abs=1e-12)


def test_cosine_decay_warms_up_then_never_rises():
    values = [cosine_decay(p) for p in np.linspace(0, 1.2, 241)]
    peak = int(np.argmax(values))
    assert values[0] < 0.05
    assert all(a <= b for a, b in itertools.pairwise(values[: peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(values[peak:]))
    assert values[-1] == pytest.approx(0.1)


def test_foreground_is_where_the_frame_differs_from_its_background():
    clip, _ = random_clip(np.random.default_rng(3))
    frames = clip.frames.astype(int)
    expected = (np.abs(frames - frames[:, :1, :1]).max(-1) > 0.1 * 127.5).astype(np.float32)
    masks = foreground(frames_to_tensor(clip.frames)[0].transpose(0, 1))
    assert 0 < expected.mean() < 0.5
    assert np.array_equal(masks[:, 0].numpy(), expected)


def test_latent_foreground_marks_every_block_that_holds_the_object():
    clips = [random_clip(np.random.default_rng(seed))[0] for seed in (1, 2)]
    videos = torch.cat([frames_to_tensor(clip.frames) for clip in clips])
    masks = latent_foreground(videos, 4)
    assert masks.shape == (2, 1, FRAMES, SIZE // 4, SIZE // 4)
    pixels = foreground(videos.permute(0, 2, 1, 3, 4).flatten(0, 1)).numpy()
    blocks = pixels.reshape(2, FRAMES, SIZE // 4, 4, SIZE // 4, 4).max(axis=(3, 5))
    assert np.array_equal(masks[:, 0].numpy(), blocks)


def test_training_script_writes_a_loadable_model_and_its_card(tmp_path):
    out = tmp_path / "model"
    tiny_run = ["--videos", "4", "--vae-steps", "2", "--steps", "2", "--batch", "2", "--check-samples", "2"]
    main(["--out", str(out), *tiny_run])
    model = TextToVideoModel.from_pretrained(str(out))
    assert model.vae.config.scaling_factor != 1.0
    assert (out / "samples.gif").stat().st_size > 0
    card = (out / "README.md").read_text()
    recipe = json.loads(card.split("```json\n")[1].split("```")[0])
    assert recipe["denoiser_steps"] == 2 and recipe["vae_steps"] == 2
    assert "python -m sma.embedded.train --out DIR --seed 0" in card
    appearance = json.loads(card.split("## Appearance check")[1].split("`")[-2])
    assert appearance["samples"] == 2 and 0 <= appearance["all"] <= 1
