"""CLIP scores (DESIGN.md §4): text alignment (prompt vs each frame) and frame consistency (all frame pairs).

The model comes from a Hub id or a local folder the way every backbone loads
(`sma.backbones.hub.load_component`: safetensors or safely read .bin, never remote code).
Where the weights cannot be had, `load_clip` raises `ClipUnavailableError` with a message
that says how to get them; callers skip the metric.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from sma.backbones.hub import ModelNotFoundError, load_component
from sma.errors import SmaError
from sma.video.frames import as_frames

DEFAULT_CLIP = "openai/clip-vit-base-patch32"


class ClipUnavailableError(SmaError):
    """The CLIP weights asked for are not on this machine and cannot be downloaded."""


@dataclass
class ClipScorer:
    """A loaded CLIP model with its tokenizer and image processor; `name` is what was asked for."""

    model: torch.nn.Module
    tokenizer: object
    image_processor: object
    name: str
    batch_size: int = 16

    @torch.no_grad()
    def embed_frames(self, video: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(f, d) unit-length image embeddings of the frames."""
        frames = list(as_frames(video))
        chunks = []
        for begin in range(0, len(frames), self.batch_size):
            pixels = self.image_processor(images=frames[begin : begin + self.batch_size], return_tensors="pt")
            chunks.append(_embedding(self.model.get_image_features(pixel_values=pixels["pixel_values"])))
        return torch.nn.functional.normalize(torch.cat(chunks).float(), dim=-1)

    @torch.no_grad()
    def embed_text(self, text: str) -> torch.Tensor:
        """(d,) unit-length text embedding; prompts longer than CLIP's 77 tokens are truncated."""
        tokens = self.tokenizer([text], padding=True, truncation=True, max_length=77, return_tensors="pt")
        features = _embedding(self.model.get_text_features(input_ids=tokens["input_ids"]))
        return torch.nn.functional.normalize(features[0].float(), dim=-1)


def clip_text_alignment(video: np.ndarray | torch.Tensor, prompt: str, scorer: ClipScorer) -> float:
    """Mean cosine between the prompt and each frame."""
    return float((scorer.embed_frames(video) @ scorer.embed_text(prompt)).mean())


def clip_score(video: np.ndarray | torch.Tensor, prompt: str, scorer: ClipScorer) -> float:
    """MTBench's text fidelity ("EF", DeT's `evaluation.py` lines 172-191): the mean over frames of CLIP's
    `logits_per_image` for the prompt, the cosine times the model's logit scale (100 for OpenAI's CLIP)."""
    return float(scorer.model.logit_scale.detach().exp()) * clip_text_alignment(video, prompt, scorer)


def clip_frame_consistency(video: np.ndarray | torch.Tensor, scorer: ClipScorer) -> float:
    """Mean cosine over all pairs of distinct frames (the SMA paper's form)."""
    embeddings = scorer.embed_frames(video)
    count = len(embeddings)
    if count < 2:
        raise ValueError("frame consistency needs at least 2 frames")
    cosines = embeddings @ embeddings.T
    return float((cosines.sum() - cosines.diagonal().sum()) / (count * (count - 1)))


def load_clip(model: str | os.PathLike = DEFAULT_CLIP, revision: str | None = None) -> ClipScorer:
    """Load CLIP from a local folder, the Hub cache, or the Hub (when reachable), in eval mode on CPU.

    It loads as every backbone does (`sma.backbones.hub.load_component`); `revision` picks a
    branch, tag or commit of a Hub id.
    """
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    source = str(model)
    try:
        model, tokenizer, image_processor = (
            load_component(loader, source, "", revision, trust_remote_code=False)
            for loader in (CLIPModel, AutoTokenizer, AutoImageProcessor)
        )
    except ModelNotFoundError as error:
        raise ClipUnavailableError(f"CLIP model unavailable: {error}") from None
    return ClipScorer(model.eval(), tokenizer, image_processor, source)


def _embedding(output) -> torch.Tensor:
    """transformers 4 returns the projected features; 5 wraps them in an output's pooler_output."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output
