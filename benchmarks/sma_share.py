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
4. The run's share (issue 43): sum scaled SMA / sum loss, what metrics.json records, after each loss-controlled
   run above; and over runs of 12 to 100 steps drawn from its steps' base and SMA values (2000 draws with
   replacement), the 95th percentile of |run's share - S| under the library's integral control and under the
   running averages (momentum 0.9) it replaced.
"""

from __future__ import annotations

import argparse
import random
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


class AveragedShare:
    """The share control before issue 43: S / (1 - S) x the ratio of running averages (momentum 0.9) of base and SMA,
    this step's values taken in first."""

    def __init__(self, target: float, momentum: float = 0.9) -> None:
        self.target, self.momentum, self.base, self.sma = target, momentum, None, None

    def scale(self, base: float, sma: float) -> float:
        keep = self.momentum
        self.base = base if self.base is None else keep * self.base + (1 - keep) * base
        self.sma = sma if self.sma is None else keep * self.sma + (1 - keep) * sma
        return self.target / (1 - self.target) * self.base / self.sma if self.sma > 0 else 1.0


def run_share(steps: list[tuple[float, float]], control) -> float:
    """Sum of scaled SMA over sum of loss, for the steps' (base, SMA at its own weights) under `control`."""
    scaled = [control.scale(base, sma) * sma for base, sma in steps]
    return sum(scaled) / (sum(base for base, _ in steps) + sum(scaled))


def run_share_spread(steps, share: float, length: int, draws: int = 2000) -> dict[str, float]:
    """95th percentile of |run's share - S| over `draws` runs of `length` steps drawn from `steps` with replacement."""
    draw, gaps = random.Random(length), {"integral": [], "averaged": []}
    for _ in range(draws):
        run = [draw.choice(steps) for _ in range(length)]
        gaps["integral"].append(abs(run_share(run, ShareControl(share)) - share))
        gaps["averaged"].append(abs(run_share(run, AveragedShare(share)) - share))
    return {name: sorted(values)[int(0.95 * draws)] for name, values in gaps.items()}


def share_tracking(model: str, name: str, share: float, steps: int, control: str) -> dict:
    """`control` "loss": the library's `sma.share`; "gradient": the same control fed with the two terms' gradient
    norms instead of their values (two extra backward passes a step). Both shares measured every step; the seconds
    per step leave out the measuring a control does not need. Also the run's share and each step's (base, SMA)."""
    overrides = {"sma.share": share} if control == "loss" else {}
    method, parameters, latents, text = method_for(model, name, **overrides)
    by_gradient = ShareControl(share) if control == "gradient" else None
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    loss_gaps, gradient_gaps, seconds, values = [], [], [], []
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
        values.append((total, value / float(terms["sma_scale"]) if control == "loss" else value))
        loss_gaps.append(abs(scale * value / (total + scale * value) - share))
        gradient_gaps.append(abs(scale * sma_norm / (base_norm + scale * sma_norm) - share))
    return {
        "loss_gap": statistics.mean(loss_gaps),
        "gradient_gap": statistics.mean(gradient_gaps),
        "seconds": statistics.median(seconds[1:] or seconds),
        "steps": values,
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
    runs = {}
    for share in arguments.shares:
        for control in ("loss", "gradient"):
            row = share_tracking(arguments.model, arguments.method, share, arguments.steps, control)
            print(
                f"{control:>9}{share:>7.2f}{row['loss_gap']:>18.3f}{row['gradient_gap']:>18.3f}{row['seconds']:>9.3f}"
            )
            runs[share] = runs.get(share, row["steps"])
    for weighting in ("none", "alpha_bar"):
        fraction = noisiest_fraction(arguments.model, arguments.method, weighting)
        print(f"2. timestep_weight {weighting}: {fraction:.0%} of SMA's gradient norm from t >= 700 (30% of steps)")
    for scale_free in (False, True):
        spread = term_spread(scale_free)
        label = "scale_free" if scale_free else "authors'"
        print(f"3. {label}: largest / smallest over 32-128 px and 8-16 frames:", spread)
    print("4. the run's share; 95th percentile of |run's share - S| over runs drawn from that run's steps")
    for share, steps in runs.items():
        gaps = {length: run_share_spread(steps, share, length) for length in (12, 20, 40, 100)}
        print(
            f"   S {share:.2f}: this run {run_share(steps, ShareControl(share)):.3f};",
            "; ".join(f"{n} steps {g['integral']:.3f} (averaged {g['averaged']:.3f})" for n, g in gaps.items()),
        )


if __name__ == "__main__":
    main()
