"""Tiny real models for tests: built from configs, saved with save_pretrained (safetensors), loaded by path.

Loading them goes through exactly the code path a Hub id or a local folder takes; nothing is
mocked. The tokenizer comes from `sma.backbones.tiny`, shared with the tiny text-to-video models.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sma.backbones.tiny import clip_text_config, write_clip_tokenizer


def build_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny CLIPModel (32 x 32 images), its tokenizer and image processor into `folder`."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = Path(folder)
    tokenizer = write_clip_tokenizer(folder)
    config = CLIPConfig(
        text_config=clip_text_config(tokenizer, 32, 2, 2, intermediate_size=37).to_dict(),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
        ),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
