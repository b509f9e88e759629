"""CLIP scores (DESIGN.md §4): text alignment (prompt vs each frame) and frame consistency (all frame pairs).

The model comes from a Hub id or a local folder through transformers' `from_pretrained`
(safetensors, never remote code). Where the weights cannot be had, `load_clip` raises
`ClipUnavailableError` with a message that says how to get them; callers skip the metric.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

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


def clip_frame_consistency(video: np.ndarray | torch.Tensor, scorer: ClipScorer) -> float:
    """Mean cosine over all pairs of distinct frames (the SMA paper's form)."""
    embeddings = scorer.embed_frames(video)
    count = len(embeddings)
    if count < 2:
        raise ValueError("frame consistency needs at least 2 frames")
    cosines = embeddings @ embeddings.T
    return float((cosines.sum() - cosines.diagonal().sum()) / (count * (count - 1)))


def load_clip(model: str | os.PathLike = DEFAULT_CLIP) -> ClipScorer:
    """Load CLIP from a local folder, the Hub cache, or the Hub (when reachable), in eval mode on CPU."""
    source = str(model)
    local = Path(source).exists()
    try:
        return _load(source, local_files_only=True)
    except Exception as error:  # transformers and huggingface_hub raise many kinds for "not there"
        if local or _offline() or not _hub_reachable():
            raise ClipUnavailableError(_how_to_get(source, error, local)) from None
    try:
        return _load(source, local_files_only=False)
    except Exception as error:
        raise ClipUnavailableError(_how_to_get(source, error, local)) from None


def _load(source: str, local_files_only: bool) -> ClipScorer:
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    options = dict(local_files_only=local_files_only, trust_remote_code=False)
    model = CLIPModel.from_pretrained(source, use_safetensors=True, **options).eval()
    tokenizer = AutoTokenizer.from_pretrained(source, **options)
    image_processor = AutoImageProcessor.from_pretrained(source, **options)
    return ClipScorer(model, tokenizer, image_processor, source)


def _embedding(output) -> torch.Tensor:
    """transformers 4 returns the projected features; 5 wraps them in an output's pooler_output."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _offline() -> bool:
    return any(
        os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick connection test, so an offline machine does not wait through the Hub client's retries."""
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _how_to_get(source: str, error: Exception, local: bool) -> str:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if local:
        return (
            f"{source} is not a CLIP model folder ({reason}); save one there with CLIPModel, its tokenizer and "
            "image processor `.save_pretrained(folder)`, or pass a Hub id"
        )
    return (
        f"CLIP weights {source!r} are not available here ({reason}); on a machine with internet run "
        f"`huggingface-cli download {source}` and copy the Hugging Face cache (~/.cache/huggingface) here, "
        "or save the model into a folder and pass that folder instead (--clip PATH)"
    )
