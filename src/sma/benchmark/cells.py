"""A cell's settings and what identifies them (the fingerprint a resumed benchmark compares), its reference
clip, one cell run (`run_cell`, wherever an executor runs it), and its outputs scored by `sma.evaluation.score`."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sma.benchmark.suite import Cell, Suite
from sma.errors import SmaError
from sma.evaluation import GroundTruth, score


def cell_config(suite: Suite, cell: Cell, model: str):
    """The TransferConfig of a cell: the method's recipe, the suite's overrides, the method's, the variant's; a method
    that trains nothing (DMT, FlowMotion) beside trained ones takes none of the suite's training keys."""
    from sma.methods import method_class
    from sma.recipes import checked_config, load_config, recipe_values

    reference = cell.reference

    def overrides(trains: bool) -> dict[str, Any]:
        return {
            **without_training(suite.overrides, trains),
            **cell.method.overrides,
            "method": cell.method.method,
            "model": model,
            "prompt": reference.prompt,
            "targets": [target.prompt for target in reference.targets],
            "seed": cell.seed,
            **without_training(suite.settings, trains),
            **{f"sma.{key}": value for key, value in cell.variant.sma.items()},
        }

    try:
        checked_config(recipe_values(cell.method.recipe, overrides(True)))  # a suite's typo said before torch loads
        trains = method_class(cell.method.method).trains
        config = load_config(cell.method.recipe, overrides(trains))
        if cell.variant.scale is not None:
            scaled = {
                f"sma.{key}": getattr(config.sma, key) * cell.variant.scale for key in ("global_weight", "local_weight")
            }
            config = load_config(cell.method.recipe, overrides(trains) | scaled)
    except SmaError as error:
        raise SmaError(f"cell {cell.id}: {error}") from error
    return config


def without_training(overrides: dict[str, Any], trains: bool) -> dict[str, Any]:
    """The dotted overrides, less the `train.*` keys for a method that trains nothing."""
    return overrides if trains else {key: value for key, value in overrides.items() if not key.startswith("train.")}


def fingerprint(config, cell: Cell) -> str:
    """Short hash of everything that makes a cell's outputs: its resolved config, its reference and, for a
    model in a local folder, the folder's contents (a model retrained in place is another setting) rather than where
    it lies, so that a suite resumes in another checkout or session (the embedded models move with sma)."""
    reference = cell.reference
    source = str(reference.path) if reference.path is not None else repr(reference.synthetic)
    untuned = [] if cell.variant.tune else ["untuned"]
    settings = config.to_dict()
    models = [model_digest(config.model), model_digest(config.motion_adapter)]
    for key, digest in zip(("model", "motion_adapter"), models, strict=True):
        if digest is not None:
            settings[key] = "a local folder"
    text = json.dumps([settings, source, *untuned, *models], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


UNHASHED = {".md", ".gif", ".png"}  # a model card and its samples do not make the outputs


def model_digest(source: str) -> str | None:
    """Hash of a local model folder's files (weights, configs, tokenizer); None for a hub id, whose revision is in
    the config."""
    if not source or not Path(source).is_dir():
        return None
    folder = Path(source).resolve()
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix not in UNHASHED)
    stamps = tuple((path.relative_to(folder).as_posix(), *_size_and_time(path)) for path in files)
    return _files_digest(folder, stamps)


def _size_and_time(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


@functools.cache
def _files_digest(folder: Path, stamps: tuple[tuple[str, int, int], ...]) -> str:
    """Content hash of the files that (name, size, mtime) `stamps` name: hashed once per process unless one changes."""
    digest = hashlib.sha256()
    for name, _, _ in stamps:
        digest.update(name.encode())
        with open(folder / name, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()[:16]


def reference_clip(cell: Cell, config, out: Path) -> tuple[Path, Any]:
    """The reference file of a cell and, for a synthetic one, its clip (ground truth in the cell's pixels):
    rendered at the cell's size with as many frames as `video.frames`, `video.stride` and `video.start` take, and
    written once per folder."""
    from sma.video import synthetic_video, write_video

    reference = cell.reference
    if reference.synthetic is None:
        return reference.path, None
    video = config.video
    frames = video.start + (video.frames - 1) * video.stride + 1
    clip = synthetic_video(**reference.synthetic, num_frames=frames, height=video.height, width=video.width)
    path = out / "references" / f"{reference.name}-{frames}x{video.height}x{video.width}.mp4"
    if not path.is_file():  # rendered once: cells running side by side read it while it stays
        write_video(path, clip.frames, fps=clip.fps)
    return path, clip


def evaluate_cell(cell: Cell, config, run_dir: Path, clip) -> list[dict[str, Any]]:
    """One record per target: `sma.evaluation.score` against the reference as the run read it (reference.mp4),
    with the ground truth of a synthetic reference's `clip`, on the tracks inside an MTBench clip's mask box, and
    the scores of the suite's protocol (`sma.evaluation.protocol_scores`); MTBench's on CoTracker's tracks where they
    lie beside reference.mp4 and an output (reference.tracks.npy, NN-target.tracks.npy: `mtbench_cotracker`)."""
    from sma.benchmark.suite import mask_box
    from sma.evaluation import protocol_scores
    from sma.metrics import video_flow
    from sma.metrics.mtbench import mtbench_from_tracks, tracks_beside
    from sma.run_folder import video_path
    from sma.video import read_video

    reference = read_video(run_dir / "reference.mp4")
    reference_flow = video_flow(reference)
    reference_tracks = tracks_beside(run_dir / "reference.mp4")
    mask = cell.reference.mask
    box = None if mask is None else mask_box(mask, reference.shape[1:3])
    scoring = cell.scoring
    scorers = loaded_scorers(scoring.clip, scoring.dino) if scoring.protocol else None
    records = []
    for index, target in enumerate(cell.reference.targets):
        path = video_path(run_dir, index, target.prompt)
        frames = read_video(path, len(reference), size=reference.shape[1:3])
        truth = None
        if clip is not None:
            background = cell.reference.synthetic["background"]
            truth = GroundTruth(clip, background, target, config.video.start, config.video.stride)
        record = {"target": target.prompt, "video": str(path.relative_to(run_dir.parent.parent))}
        record |= score(reference, frames, reference_flow=reference_flow, box=box, truth=truth)
        if scorers is not None:
            record |= protocol_scores(scoring.protocol, frames, target.prompt, *scorers)
        if reference_tracks is not None and (tracks := tracks_beside(path)) is not None:
            given = mtbench_from_tracks(reference_tracks, tracks, reference.shape[1:3], frames.shape[1:3])
            record["mtbench_cotracker"] = given.as_dict()["hybrid"]
        records.append(record)
    return records


@functools.cache
def loaded_scorers(clip: str, dino: str | None) -> tuple:
    """The CLIP and DINO scorers of a suite, loaded once per process (a Ray worker keeps them between cells)."""
    from sma.metrics.clip import load_clip
    from sma.metrics.dino import load_dino

    return load_clip(clip), None if dino is None else load_dino(dino)


def run_cell(cell: Cell, config, out: Path, transfer: Callable) -> list[dict[str, Any]]:
    """One transfer into OUT/cells/<cell>/ (its messages in OUT/logs/<cell>.log) and a record per target."""
    started = time.perf_counter()
    reference_path, clip = reference_clip(cell, config, out)
    with cell_log(out / "logs" / f"{cell.id}.log"):
        run_dir = transfer(config, reference_path, out / "cells" / cell.id, overwrite=True, tune=cell.variant.tune)
    common = {
        "cell": cell.id,
        "reference": cell.reference.name,
        "method": cell.method.name,
        "variant": cell.variant.name,
        "sma": cell.variant.uses_sma,
        "tuned": cell.variant.tune,
        "seed": cell.seed,
        **({} if cell.reference.level is None else {"level": cell.reference.level}),
        "fingerprint": fingerprint(config, cell),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return [{**common, **record} for record in evaluate_cell(cell, config, Path(run_dir), clip)]


@contextlib.contextmanager
def cell_log(path: Path) -> Iterator[None]:
    """The cell's own messages (training and sampling bars, warnings, what it is generating) go to its log, so
    the suite's bar is the one on the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as log, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        yield
