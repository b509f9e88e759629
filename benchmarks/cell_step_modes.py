"""Seconds per training and sampling step of the hard world's UNet as a benchmark cell runs it, in float32, under
bfloat16 autocast and (with --compile) compiled by inductor: the levers left for faster cells (issue 41,
docs/benchmark.md "Where a hard-world cell's time goes"). Rounds interleave the modes, so load on the machine falls
on each alike; each mode's best round is printed with its ratio to float32 and how far its outputs move.

    OMP_NUM_THREADS=1 python benchmarks/cell_step_modes.py [--rounds 3] [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch

from sma.backbones.text_to_video import TextToVideoModel
from sma.embedded import embedded_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time the UNet compiled by inductor")
    arguments = parser.parse_args()
    torch.manual_seed(0)
    unet = TextToVideoModel.from_pretrained(embedded_model("hard")).unet
    for name, parameter in unet.named_parameters():  # VMC's trainable set
        parameter.requires_grad_(bool(TextToVideoModel.temporal_attention_pattern.match(name)))
    config = unet.config
    latents = torch.randn(1, config.in_channels, 16, 16, 16)  # 16 frames of 64x64 pixels
    text = torch.randn(1, 77, config.cross_attention_dim)
    timestep = torch.tensor([500])

    def train(module, autocast: bool) -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            out = module(latents, timestep, encoder_hidden_states=text).sample
        out.float().pow(2).mean().backward()
        return out.detach().float()

    def sample(module, autocast: bool) -> torch.Tensor:  # guidance: the batch of two
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            return module(latents.repeat(2, 1, 1, 1, 1), timestep, encoder_hidden_states=text.repeat(2, 1, 1)).sample

    modes = {"float32": (unet, False), "bfloat16 autocast": (unet, True)}
    if arguments.compile:
        compiled = torch.compile(unet)
        started = time.perf_counter()
        train(compiled, False), sample(compiled, False)
        print(f"inductor: compiled and ran a step of each in {time.perf_counter() - started:.1f} s")
        modes["inductor float32"] = (compiled, False)
    seconds = {(mode, step): [] for mode in modes for step in ("train", "sample")}
    outputs = {}
    for _ in range(arguments.rounds):
        for mode, (module, autocast) in modes.items():
            for step, run in (("train", train), ("sample", sample)):
                started = time.perf_counter()
                outputs[mode, step] = run(module, autocast).float()
                seconds[mode, step].append(time.perf_counter() - started)
    for mode in modes:
        best = {step: min(seconds[mode, step]) for step in ("train", "sample")}
        ratio = {step: min(seconds["float32", step]) / best[step] for step in best}
        moved = max((outputs[mode, step] - outputs["float32", step]).abs().max().item() for step in best)
        print(
            f"{mode:18s} train {best['train']:.3f} s/step ({ratio['train']:.2f}x)  "
            f"sample {best['sample']:.3f} s/step ({ratio['sample']:.2f}x)  outputs moved by {moved:.1e}"
        )


if __name__ == "__main__":
    main()
