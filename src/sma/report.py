"""What a run reports: a side-by-side video, metrics.json and the loss curves."""

from __future__ import annotations

import json
from pathlib import Path

from sma.video import write_grid
from sma.video.atomic import atomic_output

METRICS_FILE = "metrics.json"


def write_report(run_dir: Path, targets: list[str], paths: list[Path], extra: dict | None = None) -> None:
    """Side-by-side video of the reference and the outputs, and metrics.json (per output: the robust motion
    fidelity, the Lucas-Kanade one under its old keys; plus `extra`: e.g. the run's timings)."""
    from sma.metrics import video_flow
    from sma.video import read_video

    reference = read_video(run_dir / "reference.mp4")
    reference_flow = video_flow(reference)  # once for every output
    outputs = [read_video(path) for path in paths]
    write_grid(run_dir / "comparison.mp4", [reference, *outputs], ["reference", *targets], overwrite=True)
    metrics = {
        "reference": "reference.mp4",
        "outputs": [
            {
                "target": target,
                "video": str(path.relative_to(run_dir)),
                **motion_scores(reference, reference_flow, frames),
            }
            for target, path, frames in zip(targets, paths, outputs, strict=True)
        ],
        **(extra or {}),
    }
    write_metrics(run_dir, metrics)


def motion_scores(reference, reference_flow, frames) -> dict:
    from sma.metrics import motion_fidelity, robust_motion_fidelity

    robust = robust_motion_fidelity(reference_flow, frames)
    return {
        "robust_motion_fidelity": robust.motion_fidelity,
        "robust_two_sided": robust.two_sided,
        **motion_fidelity(reference, frames).as_dict(),
    }


def read_metrics(run_dir: Path) -> dict:
    path = Path(run_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_metrics(run_dir: Path, metrics: dict) -> None:
    with atomic_output(Path(run_dir) / METRICS_FILE, overwrite=True) as temporary:
        temporary.write_text(json.dumps(metrics, indent=2))


def plot_losses(history: list[dict[str, float]], path: Path) -> None:
    """One panel per logged loss term against the step (a term may be missing on some steps: MotionDirector's
    spatial loss on the steps that drop the spatial LoRA)."""
    from matplotlib.figure import Figure  # not pyplot: no global state, so a page may draw while a run does

    names = [name for name in dict.fromkeys(key for record in history for key in record) if name != "step"]
    figure = Figure(figsize=(6, 1.8 * max(1, len(names))))
    axes = figure.subplots(len(names) or 1, 1, sharex=True, squeeze=False)
    for axis, name in zip(axes[:, 0], names, strict=False):
        steps, values = zip(*[(record["step"] + 1, record[name]) for record in history if name in record], strict=True)
        axis.plot(steps, values, linewidth=1)
        axis.set_ylabel(name, fontsize=8)
    axes[-1, 0].set_xlabel("step")
    figure.tight_layout()
    with atomic_output(path, overwrite=True) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
