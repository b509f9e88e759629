"""Does SMA help? An ablation on the embedded model with synthetic references of known motion.

For several reference motions x target appearances x seeds, each method (VMC,
MotionDirector) is trained with SMA, without SMA, with the global term only and with the
local term only, and every output is measured: motion fidelity against the reference
(one-sided, Lucas-Kanade tracks), trajectory error against the ground truth (pixels), and
appearance accuracy (share of frames showing the target's colour and shape and more of it
than of the reference's colour). Means with 95% bootstrap confidence intervals.

    python benchmarks/toy_ablation.py [--seeds 2] [--steps 100] [--write]

`--write` also writes benchmarks/RESULTS.md and benchmarks/ablation.png.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from sma.embedded import embedded_model
from sma.embedded.world import appearance_prompt, measure, reference_clip, run_config
from sma.runs import generate, train
from sma.video import MovingObject, read_video, write_video

MOTIONS = {
    "zigzag": MovingObject("circle", "red", "zigzag", start=(0.25, 0.5), end=(0.75, 0.5), size=0.35),
    "circular": MovingObject("circle", "red", "circular", start=(0.5, 0.25), end=(0.5, 0.5), size=0.35, turns=0.75),
    "diagonal": MovingObject("circle", "red", "linear", start=(0.25, 0.25), end=(0.75, 0.75), size=0.35),
}
TARGETS = (("blue", "square", "black"), ("yellow", "star", "gray"))
VARIANTS = {
    "sma": {"sma.enabled": True},
    "nosma": {"sma.enabled": False},
    "global only": {"sma.enabled": True, "sma.local_weight": 0.0},
    "local only": {"sma.enabled": True, "sma.global_weight": 0.0},
}
METRICS = ("motion_fidelity", "trajectory_error_px", "appearance_accuracy")


def run_one(model: str, method: str, variant: str, motion: str, seed: int, steps: int, work: Path) -> list[dict]:
    clip = reference_clip(MOTIONS[motion])
    reference_path = write_video(work / f"{motion}-{seed}.mp4", clip.frames, overwrite=True)
    prompts = [appearance_prompt(*target) for target in TARGETS]
    config = run_config(
        model,
        clip.prompt,
        prompts,
        method=method,
        steps=steps,
        seed=seed,
        sampling_steps=20,
        guidance_scale=5.0,
        overrides={**({"motiondirector.lora_rank": 8} if method == "motiondirector" else {}), **VARIANTS[variant]},
    )
    run_dir = train(config, reference_path, work / "run", overwrite=True)
    reference = read_video(run_dir / "reference.mp4")
    results = []
    for (colour, shape, _), path in zip(
        TARGETS, generate(run_dir / "adapter", prompts, run_dir, overwrite=True), strict=True
    ):
        scores = measure(read_video(path), reference, clip, colour, shape)
        entry = {"method": method, "variant": variant, "motion": motion, "seed": seed, "target": f"{colour} {shape}"}
        results.append(entry | {metric: scores[metric] for metric in METRICS})
    return results


def bootstrap_interval(values: list[float], rng: np.random.Generator, resamples: int = 2000) -> tuple[float, float]:
    values = np.asarray(values)
    means = rng.choice(values, (resamples, len(values))).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(results: list[dict]) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for method in dict.fromkeys(entry["method"] for entry in results):
        for variant in VARIANTS:
            chosen = [entry for entry in results if entry["method"] == method and entry["variant"] == variant]
            if not chosen:
                continue
            row = {"method": method, "variant": variant, "n": len(chosen)}
            for metric in METRICS:
                values = [entry[metric] for entry in chosen]
                row[metric] = (float(np.mean(values)), *bootstrap_interval(values, rng))
            rows.append(row)
    return rows


def paired_differences(results: list[dict]) -> list[dict]:
    """Each SMA variant minus VMC/MotionDirector alone on the same reference, seed and target:
    the pairing removes the spread between references, so the intervals measure SMA's effect."""
    rng = np.random.default_rng(1)

    def pair(entry: dict) -> tuple:
        return entry["method"], entry["motion"], entry["seed"], entry["target"]

    baseline = {pair(entry): entry for entry in results if entry["variant"] == "nosma"}
    rows = []
    for method in dict.fromkeys(entry["method"] for entry in results):
        for variant in (v for v in VARIANTS if v != "nosma"):
            chosen = [e for e in results if e["method"] == method and e["variant"] == variant and pair(e) in baseline]
            if not chosen:
                continue
            row = {"method": method, "variant": f"{variant} minus nosma", "n": len(chosen)}
            for metric in METRICS:
                values = [entry[metric] - baseline[pair(entry)][metric] for entry in chosen]
                row[metric] = (float(np.mean(values)), *bootstrap_interval(values, rng))
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    header = "| method | variant | n | motion fidelity ↑ | trajectory error (px) ↓ | appearance accuracy ↑ |"
    lines = [header, "|---|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{row[m][0]:.3f} [{row[m][1]:.3f}, {row[m][2]:.3f}]" for m in METRICS]
        lines.append(f"| {row['method']} | {row['variant']} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2))
    labels = [f"{row['method']}\n{row['variant']}" for row in rows]
    for axis, metric in zip(axes, METRICS, strict=True):
        means = np.array([row[metric][0] for row in rows])
        errors = np.array([[row[metric][0] - row[metric][1], row[metric][2] - row[metric][0]] for row in rows]).T
        axis.bar(range(len(rows)), means, yerr=errors, capsize=3, color=["C0", "C1", "C2", "C3"] * len(rows))
        axis.set_xticks(range(len(rows)), labels, fontsize=6, rotation=90)
        axis.set_title(metric.replace("_", " "), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the embedded model)")
    parser.add_argument("--methods", nargs="+", default=["vmc", "motiondirector"])
    parser.add_argument("--motions", nargs="+", default=list(MOTIONS), choices=list(MOTIONS))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md and ablation.png")
    arguments = parser.parse_args()
    model = arguments.model or embedded_model()
    started = time.time()
    results = []
    with tempfile.TemporaryDirectory() as work:
        for seed in range(arguments.seeds):
            for motion in arguments.motions:
                for method in arguments.methods:
                    for variant in VARIANTS:
                        results += run_one(model, method, variant, motion, seed, arguments.steps, Path(work))
                        print(
                            f"[{(time.time() - started) / 60:5.1f} min] {method} {variant} {motion} seed {seed}",
                            flush=True,
                        )
    rows = summarise(results)
    minutes = (time.time() - started) / 60
    command = "python benchmarks/toy_ablation.py " + " ".join(
        [
            f"--seeds {arguments.seeds}",
            f"--steps {arguments.steps}",
            "--methods",
            *arguments.methods,
            "--motions",
            *arguments.motions,
        ]
    )
    differences = paired_differences(results)
    print(table(rows))
    print(table(differences))
    print(f"{len(results)} outputs in {minutes:.1f} minutes: {command}")
    if arguments.write:
        here = Path(__file__).parent
        (here / "ablation.json").write_text(json.dumps(results, indent=1))
        plot(rows, here / "ablation.png")
        text = [
            "# SMA ablation on the embedded model",
            "",
            f"Command: `{command} --write` ({len(results)} outputs, {minutes:.0f} minutes on this machine).",
            "Means with 95% bootstrap intervals over references x targets x seeds; raw values in `ablation.json`.",
            "",
            table(rows),
            "",
            "Paired differences (same reference, seed and target; a positive motion fidelity or appearance",
            "difference and a negative trajectory-error difference favour the SMA variant):",
            "",
            table(differences),
            "",
            "![ablation](ablation.png)",
            "",
        ]
        (here / "RESULTS.md").write_text("\n".join(text))


if __name__ == "__main__":
    main()
