"""`sma export`: a trained adapter as a LoRA file for diffusers' `load_lora_weights` or ComfyUI."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        "export",
        help="write a trained adapter as a LoRA that diffusers or ComfyUI loads",
        description="Write the LoRA that `sma generate` applies (MotionDirector's temporal LoRA; motionlora's "
        "motion set on Wan, text or image to video; VMC's trained q/k/v as an SVD of their change) as one "
        ".safetensors file, with rank, alpha, base model and SMA settings in its metadata; on Wan 2.2 A14B one file "
        "per trained expert, FILE-high_noise.safetensors and FILE-low_noise.safetensors, each line saying where it "
        "loads. Loading it in diffusers: AnimateDiff (AnimateDiffPipeline), Wan text to video (WanPipeline) and image "
        "to video (WanImageToVideoPipeline): pipeline.load_lora_weights(FILE) (A14B's low-noise file with "
        "load_into_transformer_2=True). ZeroScope, ModelScope and the embedded models: their UNet3DConditionModel "
        "has no load_lora_adapter, so load_lora_weights fails; add up @ down to each layer's weight (the loop in "
        "docs/export.md). Show-1, Tune-A-Video and ControlVideo adapters do not export; DMT and FlowMotion train none.",
    )
    parser.add_argument("adapter", type=Path, metavar="ADAPTER_OR_RUN", help="adapter folder, or a run folder")
    parser.add_argument(
        "--format",
        choices=("diffusers", "comfyui"),
        required=True,
        help="diffusers: the keys diffusers' pipelines read (how each model loads them: above); comfyui: "
        "AnimateDiff MotionLoRA (AnimateDiff-Evolved), or Wan LoRA in the original model's names "
        "(LoraLoaderModelOnly); ComfyUI has no loader for ZeroScope, ModelScope or the embedded models",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.safetensors",
        help="file to write (Wan 2.2 A14B: FILE-high_noise.safetensors and FILE-low_noise.safetensors, one per expert)",
    )
    parser.add_argument("--rank", type=int, help="vmc only: SVD rank of each layer's change (default: full, exact)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    from sma.export import export_adapter

    exports = export_adapter(
        arguments.adapter, arguments.format, arguments.out, overwrite=arguments.overwrite, rank=arguments.rank
    )
    for export in exports:
        about = export.metadata
        line = f"{export.path}: {about['lora_format']} LoRA of {about['method']}, {about['layers']} layers"
        line += f", rank {about['rank']}"
        if "svd_rank" in about:
            line += f"; SVD relative error max {about['svd_relative_error_max']}"
            line += f", mean {about['svd_relative_error_mean']}"
        if export.expert is not None:
            line += f"; loads into {about['load_into']}"
        print(line)
    return 0
