"""SMA's share of the objective: which definition to control, where SMA's gradient comes from, and terms that
keep their scale (issue 33, items 1-3). Prints the figures it measures.

    python benchmarks/sma_share.py [--model embedded] [--method vmc] [--steps 30] [--shares 0.05 0.2 0.5]

1. Loss or gradient: VMC trains with `sma.share` S (the share of the loss, sma / (base + sma), held by a running
   scale); every step also measures the share of the gradient norm on the trained parameters,
   |g_sma| / (|g_base| + |g_sma|), which needs a backward pass per term. Printed: how far each share is from S
   (mean absolute gap), and the same with the running scale fed with the gradient norms instead (the other
   definition, controlled); with the seconds per step of each control.
2. Timestep weighting: the norm of SMA's gradient at timesteps 0..999 on one noise draw, with the authors'
   weights and with `sma.timestep_weight: alpha_bar`; printed: the fraction from the noisiest 30% of timesteps.
3. Scale-free terms: each term's largest over smallest value across 32-128 pixels and 8 or 16 frames of one pair
   of motions, with the authors' terms and with `sma.scale_free`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sma.methods import build_method
from sma.objectives.total import ShareControl
from sma.recipes import load_config
from sma.spectral import SpectralMotionAlignment
from sma.video import MovingObject, synthetic_video

PROMPT = "a red circle moving right"


def clip(motion: str, frames: int, size: int) -> torch.Tensor:
    video = synthetic_video(MovingObject("circle", "red", motion), num_frames=frames, height=size, width=size)
    return torch.as_tensor(video.frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1


def method_for(model: str, name: str, **overrides):
    config = load_config(overrides={"method": name, "model": model, "prompt": PROMPT, "targets": ["x"], **overrides})
    method = build_method(config)
    parameters = list(method.prepare().values())
    video = config.video
    latents = method.model.encode_video(clip("linear", video.frames, video.height))
    return method, parameters, latents, method.model.encode_prompts([PROMPT])


def gradient_norm(loss: torch.Tensor, parameters: list[torch.nn.Parameter]) -> float:
    gradients = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    return sum(float(g.pow(2).sum()) for g in gradients if g is not None) ** 0.5


def share_tracking(model: str, name: str, share: float, steps: int, control: str) -> dict[str, float]:
    """`control` "loss": the library's `sma.share`; "gradient": the same running scale fed with the two terms'
    gradient norms instead of their values (two extra backward passes a step). Both shares measured every step;
    the seconds per step leave out the measuring a control does not need."""
    overrides = {"sma.share": share} if control == "loss" else {}
    method, parameters, latents, text = method_for(model, name, **overrides)
    by_gradient = ShareControl(share) if control == "gradient" else None
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    loss_gaps, gradient_gaps, seconds = [], [], []
    for step in range(steps):
        started = time.perf_counter()
        terms = method.loss(latents, text, torch.Generator().manual_seed(step))
        base, sma = terms["loss"] - terms["sma"], terms["sma"]
        measuring = time.perf_counter()
        base_norm, sma_norm = gradient_norm(base, parameters), gradient_norm(sma, parameters)
        measured = time.perf_counter() - measuring
        scale = 1.0
        if by_gradient is not None:
            scale, measured = by_gradient.scale(base_norm, sma_norm), 0.0
        (base + scale * sma).backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - started - measured)
        value, total = float(sma.detach()), float(base.detach())
        loss_gaps.append(abs(scale * value / (total + scale * value) - share))
        gradient_gaps.append(abs(scale * sma_norm / (base_norm + scale * sma_norm) - share))
    return {
        "loss_gap": statistics.mean(loss_gaps),
        "gradient_gap": statistics.mean(gradient_gaps),
        "seconds": statistics.median(seconds[1:] or seconds),
    }


def noisiest_fraction(model: str, name: str, weighting: str, cutoff: int = 700) -> float:
    """SMA's gradient norm summed over timesteps >= cutoff, over the sum at every timestep (one noise draw)."""
    method, parameters, latents, text = method_for(model, name, **{"sma.timestep_weight": weighting})
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    norms = {}
    for t in range(0, 1000, 50):
        timesteps = torch.tensor([t])
        noisy = method.model.scheduler.add_noise(latents, noise, timesteps)
        output = method.model.predict(noisy, timesteps, text)
        (terms,) = method.sma_terms(latents, output, noisy, timesteps)
        norms[t] = gradient_norm(terms.total, parameters)
    return sum(value for t, value in norms.items() if t >= cutoff) / sum(norms.values())


def term_spread(scale_free: bool) -> dict[str, float]:
    values = {"global_motion": [], "local_amplitude": []}
    for size in (32, 64, 128):
        reference, other = clip("linear", 16, size), clip("zigzag", 16, size)
        for step, levels in ((1, 3), (2, 2)):
            terms = SpectralMotionAlignment(1.0, 1.0, levels=levels, scale_free=scale_free).terms(
                reference[:, :, ::step], other[:, :, ::step]
            )
            for name, kept in values.items():
                kept.append(getattr(terms, name).item())
    return {name: max(kept) / min(kept) for name, kept in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--method", default="vmc")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.2, 0.5])
    arguments = parser.parse_args()
    torch.manual_seed(0)
    print(f"1. {arguments.method} on {arguments.model}, {arguments.steps} steps per share, mean gaps over the steps")
    print(f"{'control':>9}{'share':>7}{'|loss share - S|':>18}{'|grad share - S|':>18}{'s/step':>9}")
    for share in arguments.shares:
        for control in ("loss", "gradient"):
            row = share_tracking(arguments.model, arguments.method, share, arguments.steps, control)
            print(
                f"{control:>9}{share:>7.2f}{row['loss_gap']:>18.3f}{row['gradient_gap']:>18.3f}{row['seconds']:>9.3f}"
            )
    for weighting in ("none", "alpha_bar"):
        fraction = noisiest_fraction(arguments.model, arguments.method, weighting)
        print(f"2. timestep_weight {weighting}: {fraction:.0%} of SMA's gradient norm from t >= 700 (30% of steps)")
    for scale_free in (False, True):
        spread = term_spread(scale_free)
        label = "scale_free" if scale_free else "authors'"
        print(f"3. {label}: largest / smallest over 32-128 px and 8-16 frames:", spread)


if __name__ == "__main__":
    main()
