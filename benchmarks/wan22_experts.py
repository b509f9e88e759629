"""Which Wan 2.2 A14B expert to give the motion LoRA (`motionlora.experts`), measured on a tiny two-expert model of the
real classes (tests/tiny_wan.py: 2 blocks of width 16 per expert, random weights). Prints the figures it measures.

    python benchmarks/wan22_experts.py [--steps 300] [--seeds 4] [--lr 2e-3]

For each `experts` value (and the untrained model) motionlora trains on a synthetic clip (a red circle on a
zigzag, 17 frames at 32x32: 5 latent frames) with SMA, then samples the training prompt from fresh noise (4 seeds,
20 UniPC steps across the boundary, 0.875). Measured against the reference's latents: motion, the mean cosine of
each latent frame residual with the reference's (1 = the same motion; SMA's frames: latent frame 0 left out), and
SMA's own motion distance (global + local terms); appearance, the error of the mean over time (what does not move).
Also where motion forms: the model with both LoRAs, one switched off while sampling (the LoRA of the high-noise
expert alone, of the low-noise one alone).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny builders live with the tests

from sma.recipes import load_config
from sma.runs import load_trained, train
from sma.spectral import SpectralMotionAlignment
from sma.video import MovingObject, synthetic_video, write_video
from tiny_wan import build_wan_a14b

PROMPT = "a red circle"


def settings(folder: Path, experts: str, steps: int, lr: float) -> dict:
    values = {"method": "motionlora", "model": str(folder), "prompt": PROMPT, "targets": [PROMPT]}
    values |= {"video.frames": 17, "video.height": 32, "video.width": 32, "sma.levels": 2}
    values |= {"train.steps": steps, "train.learning_rate": lr, "train.checkpoint_every": steps}
    values |= {"motionlora.lora_rank": 4, "motionlora.lora_alpha": 4.0, "motionlora.experts": experts}
    values |= {"generate.sampler": "unipc", "generate.steps": 20, "generate.guidance_scale": 1.0}
    return values


def scores(samples: list[torch.Tensor], reference: torch.Tensor) -> dict[str, float]:
    """Motion cosine, SMA distance and appearance error of each sample against the reference, averaged."""
    sma = SpectralMotionAlignment(global_weight=1.0, local_weight=1.0, levels=2)
    kept = reference[:, :, 1:]
    motion = kept.diff(dim=2).flatten(3)
    cosines, distances, appearance = [], [], []
    for sample in samples:
        frames = sample[:, :, 1:]
        cosines.append(torch.cosine_similarity(frames.diff(dim=2).flatten(3), motion, dim=-1).mean().item())
        distances.append(sma(kept, frames).item())
        appearance.append((frames.mean(2) - kept.mean(2)).pow(2).mean().sqrt().item())
    return {"cos": statistics.mean(cosines), "sma": statistics.mean(distances), "look": statistics.mean(appearance)}


def lora_off(method, expert: str) -> None:
    """Zero the scale of one expert's LoRA (its `motion` set) while sampling."""
    from peft.tuners.lora import LoraLayer

    for module in method.model.denoisers()[expert].modules():
        if isinstance(module, LoraLayer):
            module.set_scale("motion", 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="sma-wan22-experts-"))
    folder = build_wan_a14b(work / "model", words=PROMPT.split())
    clip = synthetic_video(MovingObject("circle", "red", "zigzag"), num_frames=17, height=32, width=32)
    reference = write_video(work / "reference.mp4", clip.frames)
    rows = []
    for experts in ("high", "low", "both"):
        run = train(
            load_config(overrides=settings(folder, experts, arguments.steps, arguments.lr)), reference, work / experts
        )
        method, adapter = load_trained(run / "adapter")
        latents = adapter.reference_latents
        if not rows:
            untrained = load_trained(run / "adapter")[0]
            untrained.copy_adapter({name: torch.zeros_like(p) for name, p in untrained.trainable.items()})
            rows.append(
                ("untrained", scores([untrained.generate(latents, PROMPT, s) for s in range(arguments.seeds)], latents))
            )
        rows.append((experts, scores([method.generate(latents, PROMPT, s) for s in range(arguments.seeds)], latents)))
        if experts == "both":
            for kept, off in (
                ("both, high-noise LoRA alone", "transformer_2"),
                ("both, low-noise LoRA alone", "transformer"),
            ):
                method, _ = load_trained(run / "adapter")
                lora_off(method, off)
                rows.append(
                    (kept, scores([method.generate(latents, PROMPT, s) for s in range(arguments.seeds)], latents))
                )
    print(
        f"{arguments.steps} steps, lr {arguments.lr}, {arguments.seeds} seeds; tiny Wan 2.2 A14B T2V (boundary 0.875)"
    )
    print(f"{'experts':32} {'motion cosine':>14} {'SMA distance':>13} {'appearance':>11}")
    for name, values in rows:
        print(f"{name:32} {values['cos']:14.3f} {values['sma']:13.3f} {values['look']:11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
