"""What a job's folder holds, as the page shows it: its videos, scores, comparison and downloads, and the table of
every job under the page's folder. Every path handed to the page is checked by `inside` (a run folder's files, its
metrics.json, its symlinks never point the page outside the job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sma.errors import SmaError
from sma.evaluation import BY_KEY, HEADLINE
from sma.report import read_metrics
from sma.run_folder import ADAPTER_DIR, is_run_folder
from sma.ui.access import inside

VARIANTS = {"sma": "with SMA", "nosma": "without SMA"}
UNTUNED = "untuned"  # the label of the untuned model's videos and scores


def run_folders(job: Path) -> list[Path]:
    """The run folders of a job (a folder made by `sma transfer` is its own single run)."""
    if is_run_folder(job):
        return [job]
    return [job / variant for variant in VARIANTS if is_run_folder(job / variant)]


@dataclass
class Results:
    """What the page's result panels show (paths inside the job)."""

    comparison: str | None = None
    videos: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[list[Any]] = field(default_factory=list)
    losses: str | None = None
    downloads: list[str] = field(default_factory=list)


SCORE_COLUMNS = (HEADLINE, "robust_two_sided_mean", "motion_fidelity_lk")  # of metrics.json, as shown
METRIC_COLUMNS = ["run", "target", *(BY_KEY[key].title for key in SCORE_COLUMNS)]


def results(job: Path, downloads: Path) -> Results:
    """What a job's folder holds, as the page shows it: the untuned model's videos and scores first, then each
    variant's; the comparison of both variants (reference, the picture of an image-to-video run, untuned, with SMA,
    without SMA) is written once."""
    from sma.methods.image_to_video import image_for
    from sma.recipes import load_config
    from sma.video import read_video, write_grid
    from sma.video.image import still_video

    found = Results()
    runs = run_folders(job)
    metrics = {run: read_metrics(run) for run in runs}
    baseline = next((run for run in runs if metrics[run].get("untuned")), None)
    shown = [(baseline, "untuned", UNTUNED)] if baseline else []
    shown += [(run, "outputs", VARIANTS.get(run.name, run.name)) for run in runs]
    for run, kind, label in shown:
        for output in metrics[run].get(kind, []):
            video = within(job, run / output["video"])
            if video is None:
                continue
            found.videos.append((video, f"{label}: {output['target']}"))
            found.metrics.append(
                [
                    label,
                    output["target"],
                    *(rounded(output[key]) for key in SCORE_COLUMNS),
                ]
            )
    found.losses = next(filter(None, (within(job, run / "loss_curves.png") for run in runs)), None)
    finished = [run for run in runs if within(job, run / "comparison.mp4")]
    if len(finished) == 1:
        found.comparison = within(job, finished[0] / "comparison.mp4")
    elif len(finished) > 1:
        path = job / "comparison.mp4"
        if not path.is_file():
            columns = [(run, "outputs", VARIANTS.get(run.name, run.name)) for run in finished]
            if baseline in finished:
                columns.insert(0, (baseline, "untuned", UNTUNED))
            cells, captions = [], []
            config = load_config(finished[0] / "config.yaml")  # its pictures (image to video): shown still
            pictures = bool(config.image or config.target_images)
            for row in zip(*(metrics[run][kind] for run, kind, _ in columns), strict=False):
                cells.append(read_video(inside(job, finished[0] / "reference.mp4", "video")))
                captions.append("reference")
                if pictures:
                    cells.append(still_video(image_for(config, row[0]["target"]), *cells[-1].shape[:3]))
                    captions.append("image")
                for (run, _, label), output in zip(columns, row, strict=True):
                    cells.append(read_video(inside(job, run / output["video"], "video")))
                    captions.append(f"{label}: {output['target']}")
            write_grid(path, cells, captions, columns=1 + pictures + len(columns), overwrite=True)
        found.comparison = str(path)
    if runs:
        found.downloads = archives(job, runs, downloads)
    return found


def archives(job: Path, runs: list[Path], downloads: Path) -> list[str]:
    """Zips of the adapters and of the whole job folder, and each adapter as a diffusers LoRA where it exports
    as one (`sma export`), beside the runs (not in them)."""
    from sma.export import export_adapter

    downloads.mkdir(parents=True, exist_ok=True)
    made = []
    adapters = [run / ADAPTER_DIR for run in runs if (run / ADAPTER_DIR).is_dir()]
    if adapters:
        made.append(zipped(downloads / f"{job.name}-adapter.zip", job, adapters))
    for adapter in adapters:
        lora = downloads / f"{job.name}-{adapter.parent.name}-lora-diffusers.safetensors"
        try:
            made += [str(export.path) for export in export_adapter(adapter, "diffusers", lora, overwrite=True)]
        except SmaError:  # a method whose trained layers a LoRA cannot hold
            continue
    made.append(zipped(downloads / f"{job.name}.zip", job, [job]))
    return made


def zipped(path: Path, job: Path, folders: list[Path]) -> str:
    """A zip of the files under `folders`, named from the job's parent; a symlink is left out (a run folder's
    `reference.mp4 -> /a/secret` would put the secret in the zip)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for folder in folders:
            for file in sorted(folder.rglob("*")):
                if file.is_file() and not file.is_symlink() and within(job, file):
                    archive.write(file, file.relative_to(job.parent))
    return str(path)


def within(job: Path, path: Path) -> str | None:
    """`path` if it is a file of the job (symlinks resolved), else None."""
    try:
        path = inside(job, path, "file")
    except SmaError:
        return None
    return str(path) if path.is_file() else None


def previous_runs(out: Path) -> list[list[Any]]:
    """One row per run folder under `out` (newest first): job, variant, method, SMA, steps, targets, fidelity."""
    from sma.recipes import load_config

    rows = []
    if not out.is_dir():
        return rows
    jobs = sorted((path for path in out.iterdir() if path.is_dir() and not path.name.startswith(".")), reverse=True)
    for job in jobs:
        for run in run_folders(job):
            try:
                config = load_config(run / "config.yaml")
            except SmaError:
                continue
            outputs = read_metrics(run).get("outputs", [])
            scores = [output[HEADLINE] for output in outputs if output[HEADLINE] is not None]
            checkpoints = sorted((run / "checkpoints").glob("step-*"))
            state = (
                f"{len(outputs)} videos" if outputs else f"stopped at {checkpoints[-1].name}" if checkpoints else "-"
            )
            rows.append(
                [
                    job.name,
                    VARIANTS.get(run.name, "") if run != job else "",
                    config.method,
                    "on" if config.sma.enabled else "off",
                    config.train.steps,
                    " | ".join(config.targets),
                    round(sum(scores) / len(scores), 3) if scores else None,
                    state,
                ]
            )
    return rows


PREVIOUS_COLUMNS = ["run", "variant", "method", "SMA", "steps", "targets", BY_KEY[HEADLINE].title, "state"]


def rounded(score: float | None) -> float | None:
    """A score for the page's tables: an undefined one (no moving point tracked) stays an empty cell."""
    return None if score is None else round(score, 3)
