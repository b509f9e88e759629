"""Small Wan 2.1 models of the real classes, in the layout of Wan-AI/Wan2.1-T2V-1.3B-Diffusers.

WanTransformer3DModel, AutoencoderKLWan (causal, 4x in time and 8x in space like the real one),
UMT5EncoderModel with a T5 tokenizer written here (a Unigram `tokenizer.json` built with the
`tokenizers` library, as the Hub's UMT5 tokenizer is one), UniPC with flow sigmas, and the
model_index.json WanPipeline reads; saved with `save_pretrained` and loaded back through the
code a Hub id takes. `build_wan_a14b`: the same with Wan 2.2 A14B's two experts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
from diffusers import __version__ as diffusers_version
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import T5TokenizerFast, UMT5Config, UMT5EncoderModel

SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in T5's vocabulary
WORD_START = "\u2581"  # SentencePiece's word boundary

# WanPipeline's scheduler as diffusers' Wan docs give it: UniPC on flow sigmas, flow prediction, shift 3.0 (480P)
WAN_SCHEDULER = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0}
WAN_SCHEDULER |= {"num_train_timesteps": 1000, "solver_order": 2, "final_sigmas_type": "zero"}


def write_umt5_tokenizer(folder: str | Path, words: Sequence[str] = (), max_length: int = 512) -> T5TokenizerFast:
    """A small SentencePiece-style Unigram tokenizer saved as the Hub's UMT5 tokenizer is (tokenizer.json and
    tokenizer_config.json for T5TokenizerFast): `words` are single tokens, anything else goes letter by letter,
    `</s>` ends every prompt. Returns the tokenizer as loaded back from `folder`."""
    letters = "abcdefghijklmnopqrstuvwxyz0123456789.,'-"
    pieces = [(token, 0.0) for token in SPECIALS]
    pieces += [(WORD_START + word.lower(), -1.0) for word in dict.fromkeys(words)]
    pieces += [(WORD_START, -4.0)] + [(letter, -5.0) for letter in letters]
    backend = Tokenizer(models.Unigram(pieces, unk_id=SPECIALS.index("<unk>"), byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always")
    end = ("</s>", SPECIALS.index("</s>"))
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[end]
    )
    tokenizer = T5TokenizerFast(
        tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0
    )
    tokenizer.model_max_length = max_length
    folder = Path(folder)
    tokenizer.save_pretrained(folder)
    return T5TokenizerFast.from_pretrained(folder)


def umt5_config(tokenizer, width: int, layers: int, heads: int, feed_forward: int) -> UMT5Config:
    """A UMT5 encoder for `tokenizer`, shaped like umt5-xxl's but for the sizes (gated GELU, 32 position buckets)."""
    return UMT5Config(
        vocab_size=len(tokenizer),
        d_model=width,
        d_kv=width // heads,
        d_ff=feed_forward,
        num_layers=layers,
        num_heads=heads,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )


def tiny_wan_vae(seed: int = 0) -> AutoencoderKLWan:
    """Wan's VAE with Wan 2.1's downsampling (time 4x, space 8x) and 4 latent channels, a few MB."""
    torch.manual_seed(seed)
    return AutoencoderKLWan(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.1, -0.2, 0.3, 0.0],  # not zero and not one, so that the normalisation is exercised
        latents_std=[1.5, 0.8, 1.2, 2.0],
    )


def build_wan(folder: Path, seed: int = 0, words: Sequence[str] = ()) -> Path:
    """Randomly initialised Wan-2.1-T2V-layout model in `folder` (transformer 2 blocks of width 16); returns it."""
    folder = Path(folder)
    tokenizer = write_umt5_tokenizer(folder / "tokenizer", words)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        text_dim=32,
        freq_dim=16,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=64,
    )
    text_encoder = UMT5EncoderModel(umt5_config(tokenizer, width=32, layers=2, heads=4, feed_forward=64))
    return save_wan_folder(folder, transformer, tiny_wan_vae(seed), text_encoder)


def add_low_noise_expert(folder: Path, boundary_ratio: float, seed: int = 1) -> Path:
    """Wan 2.2 A14B's layout from a one-transformer folder: `transformer_2` (the low-noise expert), the high-noise
    one's config with other random weights, and `boundary_ratio` in model_index.json; returns the folder."""
    folder = Path(folder)
    high = WanTransformer3DModel.from_pretrained(folder / "transformer")
    torch.manual_seed(seed)
    WanTransformer3DModel.from_config(high.config).save_pretrained(folder / "transformer_2")
    index = json.loads((folder / "model_index.json").read_text())
    index |= {"transformer_2": ["diffusers", "WanTransformer3DModel"], "boundary_ratio": boundary_ratio}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def build_wan_a14b(folder: Path, seed: int = 0, words: Sequence[str] = ()) -> Path:
    """A randomly initialised model in Wan 2.2 T2V-A14B's layout (two experts, boundary 0.875) in `folder`."""
    return add_low_noise_expert(build_wan(folder, seed, words), boundary_ratio=0.875, seed=seed + 1)


def save_wan_folder(folder: Path, transformer, vae, text_encoder) -> Path:
    """Save the networks, the flow UniPC scheduler and model_index.json as the Hub's Wan 2.1 folders are laid out;
    the tokenizer must already be in `folder/tokenizer`. Weights in their current dtype."""
    folder = Path(folder)
    transformer.save_pretrained(folder / "transformer")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    UniPCMultistepScheduler(**WAN_SCHEDULER).save_pretrained(folder / "scheduler")
    model_index = {
        "_class_name": "WanPipeline",
        "_diffusers_version": diffusers_version,
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=2))
    return folder
