"""Export a trained adapter as a LoRA file that other tools load: diffusers' `load_lora_weights`, ComfyUI.

What is exported is what `sma generate` runs: MotionDirector's temporal LoRA (its spatial
LoRA is off when generating), motionlora's motion set on Wan, text or image to video (its
appearance set is off when generating; an image-to-video file loads into
WanImageToVideoPipeline), VMC's trained q/k/v as a low-rank factorisation of their change from the
pretrained weights. Every scale is folded into the `up` factors, so each
loader adds exactly `up @ down` to a layer's weight at strength 1. The backbone names the
keys (`diffusers_lora_keys`, `comfyui_lora_keys`); docs/export.md has the layouts.

A Wan 2.2 A14B adapter holds a LoRA per trained expert (names behind `transformer.` or `transformer_2.`): each goes to
a file of its own, FILE-high_noise.safetensors and FILE-low_noise.safetensors (Wan's high_noise_model/ and
low_noise_model/), with the same keys: the loader's target says the expert (diffusers: `load_lora_weights(file)`, and
`load_into_transformer_2=True` for the low-noise file; ComfyUI: one LoRA loader after each expert's model loader).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

import sma
from sma.adapter import Adapter, adapter_folder
from sma.backbones.dispatch import text_to_video_class
from sma.backbones.wan import EXPERT_FILES, EXPERT_LOADERS
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.tensor_files import save_tensors
from sma.video.atomic import atomic_output, check_writable

FORMATS = ("diffusers", "comfyui")


@dataclass
class LoraFactors:
    """One layer's LoRA: `up @ down` is the change of its weight, at strength 1."""

    down: torch.Tensor  # (rank, in_features)
    up: torch.Tensor  # (out_features, rank)
    relative_error: float = 0.0  # of `up @ down` against the change it stands for (Frobenius norms)

    @property
    def rank(self) -> int:
        return self.down.shape[0]


@dataclass
class Export:
    """What `export_adapter` wrote: the file, its layers and the metadata stored in it; `expert`: the Wan 2.2 A14B
    expert it is for (None: the model's one denoiser)."""

    path: Path
    layers: dict[str, LoraFactors]
    metadata: dict[str, str] = field(default_factory=dict)
    expert: str | None = None


def export_adapter(
    source: str | Path, format: str, out: str | Path, *, overwrite: bool = False, rank: int | None = None
) -> list[Export]:
    """Write the LoRA of an adapter folder (or of a run folder's final adapter) to `out` in `format`: one file, or
    on Wan 2.2 A14B one per trained expert beside `out` (`expert_path`).

    `rank` truncates VMC's factorisation (default: full rank, exact); MotionDirector keeps its trained rank.
    """
    out = Path(out)
    if format not in FORMATS:
        raise SmaError(f"unknown export `format` {format!r}: expected one of {', '.join(FORMATS)}")
    if out.suffix != ".safetensors":
        raise SmaError(f"the export goes to a .safetensors file, not {out.name}")
    adapter = Adapter.load(adapter_folder(Path(source)))
    config = adapter.config
    if config.method not in LORA_SOURCES:
        raise SmaError(
            f"only {', '.join(LORA_SOURCES)} adapters export as a LoRA; this one is {config.method}, whose trained "
            "layers the pretrained model lacks or a LoRA cannot hold"
        )
    if rank is not None and (config.method != "vmc" or rank < 1):
        raise SmaError(f"`rank` >= 1 truncates a vmc adapter's factorisation; got {rank} for {config.method}")
    source = LORA_SOURCES[config.method]
    backbone = text_to_video_class(config.model, config.revision or None, config.motion_adapter or None, wan=source.wan)
    keys_of = getattr(backbone, f"{format}_lora_keys")
    trained = source.layers(adapter.tensors, backbone)
    experts = by_expert(trained)
    for expert in experts:
        check_writable(expert_path(out, expert), overwrite)
    # before any weight is read: an unloadable format fails fast
    keys = {layer: keys_of(layer.removeprefix(f"{expert}.")) for expert, layers in experts.items() for layer in layers}
    factors = source.factors(adapter.tensors, trained, backbone, config, rank)
    exports = []
    for expert, names in experts.items():
        layers = {name.removeprefix(f"{expert}."): factors[name] for name in names}
        tensors = {}
        for name in names:
            down_key, up_key = keys[name]
            tensors[down_key] = factors[name].down.float().contiguous()
            tensors[up_key] = factors[name].up.float().contiguous()
        metadata = describe(config, format, layers, rank)
        if expert is not None:
            metadata |= {"expert": expert, "load_into": EXPERT_LOADERS[expert][format]}
        path = expert_path(out, expert)
        with atomic_output(path, overwrite) as temporary:
            save_tensors(tensors, temporary, metadata=metadata)
        exports.append(Export(path, layers, metadata, expert))
    return exports


def by_expert(layers: list[str]) -> dict[str | None, list[str]]:
    """Trained layers by the Wan 2.2 A14B expert their name starts with (None: a model with one denoiser)."""
    groups: dict[str | None, list[str]] = {}
    for layer in layers:
        expert = layer.split(".")[0]
        groups.setdefault(expert if expert in EXPERT_FILES else None, []).append(layer)
    return groups


def expert_path(out: Path, expert: str | None) -> Path:
    """The file of one expert's LoRA: `out` with -high_noise or -low_noise before its suffix (`out` itself for None)."""
    return out if expert is None else out.with_name(f"{out.stem}-{EXPERT_FILES[expert]}{out.suffix}")


class MotionDirectorLora:
    """The temporal LoRA, the one MotionDirector generates with; lora_alpha = rank, so its scale is 1."""

    wan: ClassVar[bool] = False  # whether the method runs on Wan 2.1 (the backbone dispatch takes Wan only when told)

    @staticmethod
    def layers(tensors: dict[str, torch.Tensor], backbone: type) -> list[str]:
        temporal = backbone.lora_patterns["temporal"]
        names = {name.partition(".lora_")[0] for name in tensors}
        return sorted(name for name in names if temporal.fullmatch(name))

    @staticmethod
    def factors(tensors, layers, backbone, config, rank) -> dict[str, LoraFactors]:
        return {
            layer: LoraFactors(down=tensors[f"{layer}.lora_A.weight"], up=tensors[f"{layer}.lora_B.weight"])
            for layer in layers
        }


class VMCLora:
    """VMC trains whole q/k/v weights: the change from the pretrained weights, factorised by SVD.

    At full rank (min of the layer's sizes) the factors reproduce the change up to float32
    rounding; a lower `rank` keeps the largest singular values (the best approximation of that
    rank in Frobenius norm), and each layer's relative error is measured and stored.
    """

    wan: ClassVar[bool] = False

    @staticmethod
    def layers(tensors: dict[str, torch.Tensor], backbone: type) -> list[str]:
        biases = [name for name in tensors if not name.endswith(".weight")]
        if biases:
            raise SmaError(f"the adapter trains {biases[0]}: a LoRA holds weight changes only")
        return sorted(name.removesuffix(".weight") for name in tensors)

    @staticmethod
    def factors(tensors, layers, backbone, config, rank) -> dict[str, LoraFactors]:
        pretrained = backbone.pretrained_weights(
            config.model, config.revision or None, motion_adapter=config.motion_adapter
        )
        factors = {}
        for layer in layers:
            name = f"{layer}.weight"
            if name not in pretrained or pretrained[name].shape != tensors[name].shape:
                raise SmaError(f"the pretrained model has no {name} of the adapter's shape: is it the adapter's base?")
            factors[layer] = low_rank(tensors[name].double() - pretrained[name].double(), rank)
        return factors


class MotionLoRALora:
    """motionlora's "motion" set, the one `sma generate` runs on Wan (appearance debiasing's "appearance" set
    learns single frames and is off when generating), with peft's scale alpha / rank folded into the up factor."""

    wan: ClassVar[bool] = True
    adapter: ClassVar[str] = "motion"

    @classmethod
    def layers(cls, tensors: dict[str, torch.Tensor], backbone: type) -> list[str]:
        down = f".lora_A.{cls.adapter}.weight"
        return sorted(name.removesuffix(down) for name in tensors if name.endswith(down))

    @classmethod
    def factors(cls, tensors, layers, backbone, config, rank) -> dict[str, LoraFactors]:
        scale = config.options.lora_alpha / config.options.lora_rank
        return {
            layer: LoraFactors(
                down=tensors[f"{layer}.lora_A.{cls.adapter}.weight"],
                up=tensors[f"{layer}.lora_B.{cls.adapter}.weight"] * scale,
            )
            for layer in layers
        }


LORA_SOURCES = {"vmc": VMCLora, "motiondirector": MotionDirectorLora, "motionlora": MotionLoRALora}


def low_rank(change: torch.Tensor, rank: int | None = None) -> LoraFactors:
    """`change` (out, in) as float32 up (out, r) @ down (r, in) from its SVD, the singular values split evenly
    between the factors; r = `rank`, at most (and by default) min(out, in). The error is that of the float32
    factors."""
    u, singular, vh = torch.linalg.svd(change, full_matrices=False)
    kept = len(singular) if rank is None else min(rank, len(singular))
    root = singular[:kept].sqrt()
    up, down = (u[:, :kept] * root).float(), (root[:, None] * vh[:kept]).float()  # as written to the file
    size = torch.linalg.matrix_norm(change)
    error = torch.linalg.matrix_norm(change - up.to(change) @ down.to(change)) / size if size > 0 else torch.zeros(())
    return LoraFactors(down=down, up=up, relative_error=float(error))


def describe(config: TransferConfig, format: str, layers: dict[str, LoraFactors], rank: int | None) -> dict[str, str]:
    """The file's metadata (safetensors metadata holds strings): what it is, what it was trained on, and how."""
    ranks = sorted({factors.rank for factors in layers.values()})
    uniform = str(ranks[0]) if len(ranks) == 1 else f"{ranks[0]}-{ranks[-1]} (per layer)"
    metadata = {
        "format": "pt",
        "lora_format": format,
        "rank": uniform,
        "alpha": uniform,  # alpha = rank: scale 1, every scale is in the up factors
        "layers": str(len(layers)),
        "method": config.method,
        "base_model": config.model,
        "base_model_revision": config.revision,
        "motion_adapter": config.motion_adapter,
        "sma": json.dumps(dataclasses.asdict(config.sma)),
        "method_options": json.dumps(dataclasses.asdict(config.options)) if config.options is not None else "{}",
        "sma_version": sma.__version__,
    }
    if config.method == "vmc":
        errors = [factors.relative_error for factors in layers.values()]
        metadata["svd_rank"] = "full" if rank is None else str(rank)
        metadata["svd_relative_error_max"] = f"{max(errors):.3e}"
        metadata["svd_relative_error_mean"] = f"{sum(errors) / len(errors):.3e}"
    return metadata
