"""What a run reports: a side-by-side video, metrics.json and the loss curves."""

from __future__ import annotations

import json
from pathlib import Path

from sma.video import write_grid
from sma.video.atomic import atomic_output

METRICS_FILE = "metrics.json"
GUIDANCE_LOG = "guidance_log.json"  # a zero-shot run's losses of every Adam iteration, by target
NOT_PLOTTED = ("step", "references")  # keys of a loss record that are not losses
REFERENCES_DIR = "references"  # every reference of a run trained on several, as NN-name.mp4


def write_report(
    run_dir: Path,
    targets: list[str],
    paths: list[Path],
    extra: dict | None = None,
    untuned: list[Path] = (),
    images: list[Path] = (),
) -> None:
    """Side-by-side video of the references and the outputs, and metrics.json (per output: `sma.evaluation.score`;
    plus `extra`: e.g. the run's timings).

    The scores of an output are against reference.mp4, the first reference, the one generation inverts (so the
    output follows it frame by frame); with several references (references/), `per_reference` adds the scores
    against each, in order, the first included. `untuned`: the untuned model's video of each target, scored the
    same way under "untuned"; the comparison then has one row per target: the references, untuned, output.
    `images`: the picture each target started from (image to video), shown still after the references.
    """
    from sma.evaluation import score
    from sma.metrics import video_flow
    from sma.video import read_video
    from sma.video.image import still_video

    files = sorted((run_dir / REFERENCES_DIR).glob("*.mp4")) or [run_dir / "reference.mp4"]
    references = [read_video(run_dir / "reference.mp4")] + [read_video(path) for path in files[1:]]
    flows = [video_flow(reference) for reference in references]  # once for every output
    outputs = [read_video(path) for path in paths]
    baselines = [read_video(path) for path in untuned]
    stills = [still_video(path, *outputs[0].shape[:3]) for path in images]
    captions = ["reference", *(f"reference {index + 1}" for index in range(1, len(references)))]
    if baselines or stills:
        cells, labels = [], []
        for index, (target, output) in enumerate(zip(targets, outputs, strict=True)):
            cells += [*references, *stills[index : index + 1], *baselines[index : index + 1], output]
            labels += [*captions, *(["image"] if stills else []), *([f"untuned: {target}"] if baselines else [])]
            labels.append(target)
        columns = len(references) + bool(stills) + bool(baselines) + 1
        write_grid(run_dir / "comparison.mp4", cells, labels, columns=columns, overwrite=True)
    else:
        write_grid(run_dir / "comparison.mp4", [*references, *outputs], [*captions, *targets], overwrite=True)

    def records(videos: list[Path], frames_of: list) -> list[dict]:
        found = []
        for target, path, frames in zip(targets, videos, frames_of, strict=True):
            scores = [
                score(reference, frames, reference_flow=flow) for reference, flow in zip(references, flows, strict=True)
            ]
            record = {"target": target, "video": str(path.relative_to(run_dir)), **scores[0]}
            if len(references) > 1:
                record["per_reference"] = [
                    {"reference": str(file.relative_to(run_dir)), **score}
                    for file, score in zip(files, scores, strict=True)
                ]
            found.append(record)
        return found

    metrics = {"reference": "reference.mp4", "outputs": records(paths, outputs)}
    if baselines:
        metrics["untuned"] = records(list(untuned), baselines)
    write_metrics(run_dir, metrics | (extra or {}))


def read_guidance(run_dir: Path) -> list[dict]:
    """A zero-shot run's guidance losses, one record per Adam iteration ([] when it has none)."""
    path = Path(run_dir) / GUIDANCE_LOG
    return json.loads(path.read_text()) if path.is_file() else []


def read_metrics(run_dir: Path) -> dict:
    """A folder's metrics.json ({} without one), its scores under today's keys whatever version wrote it."""
    from sma.evaluation import current_keys

    path = Path(run_dir) / METRICS_FILE
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    for kind in ("outputs", "untuned"):  # the scored videos
        entries = [current_keys(entry) for entry in metrics.get(kind, ())]
        for entry in entries:
            if "per_reference" in entry:
                entry["per_reference"] = [current_keys(scores) for scores in entry["per_reference"]]
        if kind in metrics:
            metrics[kind] = entries
    return metrics


def write_metrics(run_dir: Path, metrics: dict) -> None:
    """The one writer of metrics.json (runs, `sma demo`): scores under `sma.evaluation.METRICS`' keys."""
    with atomic_output(Path(run_dir) / METRICS_FILE, overwrite=True) as temporary:
        temporary.write_text(json.dumps(metrics, indent=2))


def sma_share(history: list[dict[str, float]]) -> float | None:
    """SMA's share of the training (or guidance) loss over the run (None without SMA). Near 1, SMA's weights and not the
    method's objective set the direction of every Adam step: the hard world's ablation found that costly."""
    steps = [record for record in history if "sma" in record]
    total = sum(record["loss"] for record in steps)
    return sum(record["sma"] for record in steps) / total if steps and total > 0 else None


def plot_losses(history: list[dict[str, float]], path: Path) -> None:
    """One panel per logged loss term against the step (a term may be missing on some steps: MotionDirector's
    spatial loss on the steps that drop the spatial LoRA)."""
    from matplotlib.figure import Figure  # not pyplot: no global state, so a page may draw while a run does

    names = [name for name in dict.fromkeys(key for record in history for key in record) if name not in NOT_PLOTTED]
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
