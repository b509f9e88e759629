"""The embedded model's networks: ZeroScope's classes at small widths, written in the diffusers layout.

No machine here can download weights, so the embedded default model starts from a fresh one of
these (UNet3DConditionModel, AutoencoderKL, CLIPTextModel, a CLIPTokenizer written here,
DDIMScheduler), saved with `save_pretrained` and loaded back through the code a Hub id takes. The
tests build their tiny models of the same classes from here (`tests/tiny_models.py`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from diffusers import __version__ as diffusers_version
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
# A handful of merges so that byte-pair encoding really runs; every merged token is in the vocabulary.
MERGES = (("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("i", "n"), ("o", "n</w>"))


def _byte_characters() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the 256 byte values (GPT-2's table)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    characters, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            characters[byte] = chr(byte)
        else:
            characters[byte] = chr(256 + extra)
            extra += 1
    return [characters[byte] for byte in range(256)]


def byte_pair_encode(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """The pieces CLIP's BPE reads a word's `symbols` as: the adjacent pair of lowest rank (the leftmost of
    equals) merges first, until no adjacent pair is a merge, as the tokenizers library does."""
    while True:
        pairs = enumerate(itertools.pairwise(symbols))
        rank, index = min(((ranks.get(pair, len(ranks)), index) for index, pair in pairs), default=(len(ranks), 0))
        if rank == len(ranks):
            return symbols
        symbols = [*symbols[:index], symbols[index] + symbols[index + 1], *symbols[index + 2 :]]


def write_clip_tokenizer(folder: str | Path, max_length: int = 77, words: Sequence[str] = ()) -> CLIPTokenizer:
    """A small CLIP byte-level BPE: writes vocab.json and merges.txt as on the Hub, loads them
    with CLIPTokenizer.from_pretrained, saves the result into `folder` and returns it
    (its `len()` is the vocabulary size a text model needs).

    Each of `words` becomes one token, so a small text encoder sees words rather than letters: a merge
    is added after the others for its first two pieces until the merges so far read it whole. Merges
    take effect by rank, so a later one never changes how an earlier word is read, and a pair an
    earlier word's merges take first (`ar` before `squ` in square) becomes one of the word's pieces.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        while len(pieces := byte_pair_encode([*word[:-1], word[-1] + "</w>"], ranks)) > 1:
            ranks[pieces[0], pieces[1]] = len(ranks)
    for pair in MERGES:
        ranks.setdefault(pair, len(ranks))
    tokens = _byte_characters()
    tokens += [token + "</w>" for token in tokens]
    tokens += [left + right for left, right in ranks]
    tokens += list(SPECIAL_TOKENS)
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    text = "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in ranks)
    (folder / "merges.txt").write_text(text, encoding="utf-8")
    (folder / "tokenizer.json").unlink(missing_ok=True)  # a stale one would win over the new files
    tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=max_length)
    tokenizer.save_pretrained(folder)
    return tokenizer


def clip_text_config(tokenizer: CLIPTokenizer, width: int, layers: int, heads: int, **options) -> CLIPTextConfig:
    """A CLIP text tower for `tokenizer`: its vocabulary, special tokens and prompt length."""
    values = {
        "vocab_size": len(tokenizer),
        "hidden_size": width,
        "intermediate_size": 2 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "max_position_embeddings": tokenizer.model_max_length,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return CLIPTextConfig(**(values | options))


@dataclass(frozen=True)
class TinySizes:
    """Widths of a small model; the defaults give a model of a few MB that runs in milliseconds."""

    unet_channels: tuple[int, ...] = (16, 32)
    vae_channels: tuple[int, ...] = (8, 16)
    text_width: int = 32
    text_layers: int = 2
    max_prompt_tokens: int = 16
    attention_head_dim: int = 4
    norm_groups: int = 4


def build_text_to_video(folder: Path, sizes: TinySizes = TinySizes(), seed: int = 0, words: Sequence[str] = ()) -> Path:
    """Randomly initialised ZeroScope-layout model in `folder`; returns the folder.

    `words` become single tokens of the tokenizer (see `write_clip_tokenizer`).
    """
    torch.manual_seed(seed)
    down = ("CrossAttnDownBlock3D",) * (len(sizes.unet_channels) - 1) + ("DownBlock3D",)
    up = ("UpBlock3D",) + ("CrossAttnUpBlock3D",) * (len(sizes.unet_channels) - 1)
    unet = UNet3DConditionModel(
        in_channels=4,
        out_channels=4,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=sizes.unet_channels,
        layers_per_block=1,
        cross_attention_dim=sizes.text_width,
        attention_head_dim=sizes.attention_head_dim,
        norm_num_groups=sizes.norm_groups,
    )
    return write_model(folder, unet, "TextToVideoSDPipeline", sizes, words)


def write_model(folder: Path, unet, pipeline: str, sizes: TinySizes, words: Sequence[str] = ()) -> Path:
    """Write `unet` with a new tokenizer, CLIP text encoder, VAE, DDIM scheduler and model_index.json."""
    folder = Path(folder)
    tokenizer = write_clip_tokenizer(folder / "tokenizer", sizes.max_prompt_tokens, words)
    text_encoder = CLIPTextModel(
        clip_text_config(tokenizer, sizes.text_width, sizes.text_layers, max(1, sizes.text_width // 16))
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(sizes.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(sizes.vae_channels),
        block_out_channels=sizes.vae_channels,
        latent_channels=4,
        norm_num_groups=sizes.norm_groups,
    )
    return save_model_folder(folder, pipeline, unet, vae, text_encoder, {"sma_sizes": asdict(sizes)})


def save_model_folder(folder: Path, pipeline: str, unet, vae, text_encoder, extra: dict | None = None) -> Path:
    """Save the networks, a DDIM scheduler (Stable Diffusion's noise schedule) and model_index.json in the
    diffusers layout; the tokenizer must already be in `folder/tokenizer`. Weights in their current dtype."""
    folder = Path(folder)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    text_encoder.save_pretrained(folder / "text_encoder")
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    scheduler.save_pretrained(folder / "scheduler")
    model_index = {
        "_class_name": pipeline,
        "_diffusers_version": diffusers_version,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", type(unet).__name__],
        "vae": ["diffusers", "AutoencoderKL"],
        **(extra or {}),
    }
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=2))
    return folder
