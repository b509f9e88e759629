"""MTBench's temporal consistency (DeT, ICCV 2025): DINO ViT-B/16 features of each frame compared with the first
frame's and the previous frame's, as `evaluation.py` of Shi-qingyu/DeT computes it (lines 227-257).

The model loads as CLIP does (`sma.backbones.hub.load_component`: a local folder or a Hub id, safetensors or
.bin read with `weights_only`, never remote code).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from sma.backbones.hub import ModelNotFoundError, load_component
from sma.errors import SmaError
from sma.video.frames import as_frames

DEFAULT_DINO = "facebook/dino-vitb16"  # DeT's evaluation.py line 261


class DinoUnavailableError(SmaError):
    """The DINO weights asked for are not on this machine and cannot be downloaded."""


@dataclass
class DinoScorer:
    """A loaded ViTModel with its image processor; `name` is what was asked for."""

    model: torch.nn.Module
    image_processor: object
    name: str

    @torch.no_grad()
    def embed_frames(self, video: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(f, d) unit-length `pooler_output` of every frame (DeT lines 239-243)."""
        pixels = self.image_processor(images=list(as_frames(video)), return_tensors="pt")["pixel_values"]
        return torch.nn.functional.normalize(self.model(pixel_values=pixels).pooler_output.float(), dim=-1)


def temporal_consistency(video: np.ndarray | torch.Tensor, scorer: DinoScorer) -> float:
    """Half the mean cosine of each frame with the first, half that with the previous (frame 0 counts as its own
    previous and scores 1 in both, as in DeT)."""
    embeddings = scorer.embed_frames(video)
    previous = embeddings[[0, *range(len(embeddings) - 1)]]
    first = (embeddings @ embeddings[0]).mean()
    return float((first + (embeddings * previous).sum(dim=-1).mean()) / 2)


def load_dino(model: str | os.PathLike = DEFAULT_DINO, revision: str | None = None) -> DinoScorer:
    """DINO from a local folder, the Hub cache, or the Hub (when reachable), in eval mode on CPU."""
    from transformers import AutoImageProcessor, ViTModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    source = str(model)
    try:
        vit, processor = (
            load_component(loader, source, "", revision, trust_remote_code=False)
            for loader in (ViTModel, AutoImageProcessor)
        )
    except ModelNotFoundError as error:
        raise DinoUnavailableError(f"DINO model unavailable: {error}") from None
    return DinoScorer(vit.eval(), processor, source)
