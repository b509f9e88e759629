"""The embedded model's world and training recipe (the shipped weights are exercised by `sma demo`)."""

import itertools
import json
import math
import time

import numpy as np
import pytest
import torch
from transformers import CLIPTokenizer

from sma.backbones.latent_video import WORDS_IN_PIECES
from sma.backbones.text_to_video import TextToVideoModel
from sma.embedded import MODEL_DIRS
from sma.embedded.architecture import write_clip_tokenizer
from sma.embedded.train import (
    as_pixels,
    cosine_decay,
    latent_foreground,
    main,
    make_dataset,
    model_sizes,
    tokenizer_note,
    train_denoiser,
)
from sma.embedded.world import FRAMES, HARD, SIZE, random_clip, scene_prompt, vocabulary
from sma.errors import SmaError
from sma.video.frames import frames_to_tensor
from tiny_models import build_text_to_video


@pytest.mark.parametrize("world", ["simple", "hard"])
def test_every_prompt_word_is_in_the_vocabulary_and_prompts_fit(world):
    words = set(vocabulary(world=world))
    draw = random_clip if world == "simple" else HARD.random_clip
    rng = np.random.default_rng(123)  # other clips than the ones the vocabulary was read from
    for _ in range(300):
        _, prompt = draw(rng)
        assert set(prompt.replace(",", " ").split()) <= words, prompt
        tokens = len(prompt.replace(",", " , ").split()) + 2  # words and commas are one token each, with BOS and EOS
        assert tokens <= model_sizes(world).max_prompt_tokens, prompt


def yielded(tokenizer, token: str) -> bool:
    """Whether some text reads as `token`: a word that ends in it, or its text going on with é, two bytes no
    merge of these tokenizers takes, where it starts or goes on a word."""
    text = token.removesuffix("</w>") + ("" if token.endswith("</w>") else "é")
    return tokenizer(text, add_special_tokens=False).input_ids[0] == tokenizer.convert_tokens_to_ids(token)


def merged_tokens(tokenizer) -> list[str]:
    """The vocabulary less its special tokens and the 512 single bytes (at a word's end or not)."""
    specials = set(tokenizer.all_special_tokens)
    return [token for token in tokenizer.get_vocab() if len(token.removesuffix("</w>")) > 1 and token not in specials]


@pytest.mark.parametrize("world", ["simple", "hard"])
def test_the_written_tokenizer_reads_every_word_of_the_world_whole(world, tmp_path):
    """Issue 46.3: one word's merges took pairs another's needed (ar before squ), so the hard model read 13 of
    its words in pieces though its vocabulary listed them; the tokenizer `train` writes reads each as one."""
    words = vocabulary(world=world)
    write_clip_tokenizer(tmp_path, words=words)
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)  # as a model loads it
    ids = tokenizer(" ".join(words), add_special_tokens=False).input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == [f"{word}</w>" for word in words]
    assert [token for token in merged_tokens(tokenizer) if not yielded(tokenizer, token)] == []


@pytest.mark.parametrize("world", ["simple", "hard"])
def test_the_shipped_tokenizers_list_only_what_they_read_and_name_the_words_in_pieces(world):
    """Issue 46.3: the shipped vocabularies listed words (square</w>) their merges never build; pruned with ids
    kept, each lists only tokens some text reads as, and its card and tokenizer_config.json name the world's words
    the model learnt in pieces (the unknown-words warning spares them)."""
    tokenizer = CLIPTokenizer.from_pretrained(MODEL_DIRS[world] / "tokenizer")
    assert [token for token in merged_tokens(tokenizer) if not yielded(tokenizer, token)] == []
    words = vocabulary(world=world)
    assert tokenizer.init_kwargs[WORDS_IN_PIECES] == [word for word in words if len(tokenizer.tokenize(word)) > 1]
    card = (MODEL_DIRS[world] / "README.md").read_text()
    assert f"({tokenizer_note(tokenizer, words)}), UNet3DConditionModel," in card


def test_the_simple_world_keeps_the_shipped_models_words():
    """The shipped model learnt these words, three in pieces: the simple world's prompts must not change."""
    tokenizer = CLIPTokenizer.from_pretrained(MODEL_DIRS["simple"] / "tokenizer")
    whole = {word for word in vocabulary() if tokenizer.tokenize(word) == [f"{word}</w>"]}
    assert set(vocabulary()) - whole == {"counterclockwise", "purple", "triangle"}
    assert scene_prompt([("red", "circle")], "plain", ("white", "white")) == "a red circle on a plain white background"


def test_hard_clips_hold_what_the_world_promises():
    rng = np.random.default_rng(0)
    clips = [HARD.random_clip(rng, motion_phrase_probability=1.0)[0] for _ in range(60)]
    assert all(clip.frames.shape == (16, 64, 64, 3) for clip in clips)
    inside = np.concatenate([clip.trajectories.reshape(-1, 2) for clip in clips]) / 64
    assert inside.min() >= HARD.margin and inside.max() <= 1 - HARD.margin
    counts = [len(clip.objects) for clip in clips]
    moving_camera = [not np.allclose(clip.camera[-1], clip.camera[0]) for clip in clips]
    bodies = {obj.body for clip in clips for obj in clip.objects}
    timings = {obj.timing for clip in clips for obj in clip.objects}
    assert 15 <= counts.count(2) <= 45 and 25 <= sum(moving_camera) <= 55
    assert bodies == {"rigid", "pulsing", "squashing", "waving"} and timings == {"constant", "ease", "stop-and-go"}
    for clip in clips:
        if len(clip.objects) == 2:  # two objects in their own bands move differently
            assert not np.allclose(np.diff(clip.trajectories[0], axis=0), np.diff(clip.trajectories[1], axis=0))
            assert clip.objects[0].colour != clip.objects[1].colour


def test_clips_are_reproducible_from_the_generator():
    first, prompt = random_clip(np.random.default_rng(7))
    second, same_prompt = random_clip(np.random.default_rng(7))
    assert prompt == same_prompt
    assert np.array_equal(first.frames, second.frames)
    assert first.frames.shape == (FRAMES, SIZE, SIZE, 3)


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


def test_the_dataset_is_uint8_frames_with_the_renderers_masks():
    videos, masks, prompts = make_dataset(3, np.random.default_rng(4), "hard")
    assert videos.dtype == torch.uint8 and videos.shape == (3, 16, 64, 64, 3) and masks.shape == (3, 16, 64, 64)
    again = [HARD.random_clip(np.random.default_rng(4))]  # the first clip comes from the same draws
    assert np.array_equal(videos[0].numpy(), again[0][0].frames) and prompts[0] == again[0][1]
    assert np.array_equal(masks[0].numpy(), again[0][0].masks)
    pixels = as_pixels(videos[0])
    assert torch.equal(pixels.transpose(0, 1)[None], frames_to_tensor(videos[0].numpy()))


def test_latent_foreground_marks_every_block_that_holds_an_object():
    clips = [random_clip(np.random.default_rng(seed))[0] for seed in (1, 2)]
    masks = torch.stack([torch.from_numpy(clip.masks) for clip in clips])
    latent = latent_foreground(masks, 4)
    assert latent.shape == (2, 1, FRAMES, SIZE // 4, SIZE // 4)
    blocks = masks.numpy().reshape(2, FRAMES, SIZE // 4, 4, SIZE // 4, 4).max(axis=(3, 5))
    assert np.array_equal(latent[:, 0].numpy(), blocks) and 0 < blocks.mean() < 0.5


def test_model_sizes_check_the_widths():
    assert model_sizes("hard", "48,96,96").unet_channels == (48, 96, 96)
    assert model_sizes("simple").max_prompt_tokens == 24
    for bad in ("32,sixty", "32,60"):
        with pytest.raises(SmaError, match="UNet widths"):
            model_sizes("hard", bad)


def test_training_script_writes_a_loadable_model_and_its_card(tmp_path):
    out = tmp_path / "model"
    tiny_run = ["--videos", "4", "--vae-steps", "2", "--steps", "2", "--batch", "2", "--check-samples", "2"]
    main(["--out", str(out), "--world", "hard", "--sample-steps", "2", "--unet-channels", "16,32", *tiny_run])
    model = TextToVideoModel.from_pretrained(str(out))
    assert model.vae.config.scaling_factor != 1.0
    assert (out / "samples.gif").stat().st_size > 0
    card = (out / "README.md").read_text()
    recipe = json.loads(card.split("```json\n")[1].split("```")[0])
    assert recipe["denoiser_steps"] == 2 and recipe["vae_steps"] == 2
    assert "python -m sma.embedded.train --out DIR --world hard --seed 0" in card
    assert recipe["sizes"]["unet_channels"] == [16, 32] and "16-frame 64x64 clips of the hard world" in card
    assert len(model.tokenizer("a", padding="max_length").input_ids) == 64
    assert "(byte-level BPE whose merges read each word of the world's vocabulary as one token)," in card
    appearance = json.loads(card.split("## Appearance check")[1].split("`")[-2])
    assert appearance["samples"] == 2 and 0 <= appearance["all"] <= 1
    assert json.loads((out / "training.json").read_text()) == recipe

    again = tmp_path / "continued"
    main(["--out", str(again), "--init", str(out), "--world", "hard", "--sample-steps", "2", *tiny_run])
    continued = TextToVideoModel.from_pretrained(str(again))
    for name, tensor in model.vae.state_dict().items():  # the VAE and its latent scale kept, the denoiser trained
        assert torch.equal(tensor, continued.vae.state_dict()[name]), name
    assert continued.vae.config.scaling_factor == model.vae.config.scaling_factor
    assert any(
        not torch.equal(tensor, continued.unet.state_dict()[name]) for name, tensor in model.unet.state_dict().items()
    )
    record = json.loads((again / "training.json").read_text())
    assert record["continues"] == recipe and record["vae_steps"] == 0 and record["sizes"] == recipe["sizes"]
    card = (again / "README.md").read_text()
    assert "--out DIR0 --world hard --seed 0" in card and "--steps 2 --videos 4 --batch 2 --init DIR0\n```" in card


def test_the_denoiser_trains_where_the_model_is(tmp_path):
    """On a GPU a draw without `device` (timesteps, noise) lands on the CPU and meets CUDA latents; on the
    `meta` device the same mix fails here too, so this catches it without a GPU."""
    folder = build_text_to_video(tmp_path / "model", model_sizes("hard", "16,32"), words=vocabulary(world="hard"))
    model = TextToVideoModel.from_pretrained(str(folder), "meta")
    latents, foreground = torch.zeros(4, 4, 16, 16, 16, device="meta"), torch.zeros(4, 1, 16, 16, 16, device="meta")
    deadline = time.time() + 600
    rng = np.random.default_rng(0)
    assert train_denoiser(model, latents, foreground, ["a red circle"] * 4, 2, 2, deadline, rng, print) == 2


def test_continuing_needs_another_folder_of_the_same_world(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    for arguments, message in (
        (["--out", str(tmp_path / "new"), "--init", str(model)], "no model written by `sma.embedded.train`"),
        (["--out", str(model), "--init", str(model)], "must be different folders"),
    ):
        with pytest.raises(SystemExit):
            main(arguments)
        assert message in capsys.readouterr().err
    (model / "training.json").write_text(json.dumps({"world": "simple"}))
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "new"), "--init", str(model), "--world", "hard"])
    assert "learnt the simple world: pass `--world simple`" in capsys.readouterr().err


def test_coherence_finds_the_worlds_objects_in_every_frame_and_tells_a_jumping_one():
    from benchmark_scripts import load_script

    from sma.video.synthetic import rgb

    coherence = load_script("coherence")
    clip, _ = HARD.random_clip(np.random.default_rng(3))
    colours = [rgb(thing.colour) for thing in clip.objects]
    found, jumps = coherence.object_scores(clip.frames, colours)
    assert found == 1.0 and len(jumps) == len(colours) * (len(clip.frames) - 1) and max(jumps) < 8
    scrambled = clip.frames[[0, 15, 1, 14, 2, 13, 3, 12, 4, 11, 5, 10, 6, 9, 7, 8]]
    _, scrambled_jumps = coherence.object_scores(scrambled, colours)
    assert max(scrambled_jumps) > 8
    blanked = clip.frames.copy()
    blanked[:4] = blanked[:4].mean(axis=(1, 2), keepdims=True).astype(np.uint8)  # no object in the first 4 frames
    assert coherence.object_scores(blanked, colours)[0] == 0.75
