import time

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

from sma.metrics.clip import ClipUnavailableError, clip_frame_consistency, clip_text_alignment, load_clip
from sma.video import MovingObject, synthetic_video
from tiny_models import build_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def frames():
    obj = MovingObject("star", "blue", "circular", start=(0.5, 0.25), end=(0.5, 0.5), rotation=90)
    return synthetic_video(obj, background="textured", num_frames=6, seed=2).frames


def test_text_alignment_is_the_mean_cosine_between_prompt_and_frames(tiny_clip, frames):
    prompt = "a blue star circling clockwise"
    score = clip_text_alignment(frames, prompt, load_clip(tiny_clip))
    # independently: the model's own forward pass, which returns unit-length embeddings of both
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    tokens = AutoTokenizer.from_pretrained(tiny_clip)([prompt], return_tensors="pt")
    pixels = AutoImageProcessor.from_pretrained(tiny_clip)(images=list(frames), return_tensors="pt")
    with torch.no_grad():
        output = model(input_ids=tokens["input_ids"], pixel_values=pixels["pixel_values"])
    expected = float(np.mean([float(image @ output.text_embeds[0]) for image in output.image_embeds]))
    assert score == pytest.approx(expected, abs=1e-5)


def test_frame_consistency_is_the_mean_over_all_pairs(tiny_clip, frames):
    scorer = load_clip(tiny_clip)
    embeddings = scorer.embed_frames(frames)
    pairs = [
        float(torch.nn.functional.cosine_similarity(embeddings[i], embeddings[j], dim=0))
        for i in range(len(frames))
        for j in range(len(frames))
        if i != j
    ]
    assert clip_frame_consistency(frames, scorer) == pytest.approx(np.mean(pairs), abs=1e-6)
    still = np.repeat(frames[:1], 4, axis=0)
    assert clip_frame_consistency(still, scorer) == pytest.approx(1.0, abs=1e-5)


def test_embeddings_are_unit_length_and_batched(tiny_clip, frames):
    scorer = load_clip(tiny_clip)
    scorer.batch_size = 4  # 6 frames: two batches give the same embeddings as one
    batched = scorer.embed_frames(frames)
    scorer.batch_size = 16
    torch.testing.assert_close(batched, scorer.embed_frames(frames))
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(len(frames)))


def test_an_unavailable_hub_id_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ClipUnavailableError) as caught:
        load_clip("sma-tests/no-such-clip")
    message = str(caught.value)
    assert "hf download sma-tests/no-such-clip --local-dir DIR" in message and "pass the folder" in message
    assert "\n" not in message
    assert time.monotonic() - started < 10


def test_a_folder_that_is_not_clip(tmp_path):
    with pytest.raises(ClipUnavailableError, match="no weights sma reads there"):
        load_clip(tmp_path)
