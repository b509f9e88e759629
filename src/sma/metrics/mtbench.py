"""MTBench's motion fidelity (DeT, ICCV 2025), the field's benchmark metric, on sma's point tracks.

As `evaluation.py` of Shi-qingyu/DeT computes it (lines 22-170), with tracks (n, f, 2) in coordinates
divided by the frame's width and height:

- cosine: each track becomes [its start, its f-1 steps], every row scaled to unit length; corr(i, j) is the
  mean over the f rows of their dot products; the score is the mean over generated tracks of the best
  reference track (`get_cosine_similarity_score`, lines 55-86; `max(dim=1)`, line 163);
- "Fréchet": d(i, j) is the mean Euclidean distance over every pair of points of the two tracks (scipy's
  `cdist(...).mean()`, lines 22-25: not the Fréchet distance its name says), similarity 1 / (1 + d)
  (line 51), on 50 tracks drawn at random (line 154), best match averaged as for the cosine;
- hybrid (`--add_frechet_score`): 0.5 cosine + 0.5 Fréchet similarity (line 161).

Where sma differs, and why: the tracks are DIS-flow tracks from the grid of the robust metric (`FlowTracker`), not
CoTracker's (its weights are not downloaded here; `mtbench_from_tracks` scores CoTracker's own tracks); a track
lost before the end is dropped, so the two videos may keep different numbers of tracks and the 50 are drawn from
each on its own (DeT draws the same indices from both grids, of equal size); the draw is seeded; a step of length
0 counts as 0 in the cosine (DeT divides 0 by 0, a NaN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sma.errors import SmaError
from sma.metrics.flow import FlowTracker, VideoFlow, check_frame_counts, video_flow
from sma.metrics.motion_fidelity import grid_in_region, region_mask, unit_vectors

FRECHET_TRACKS = 50  # DeT's evaluation.py line 154


@dataclass(frozen=True)
class MTBenchFidelity:
    """hybrid: MTBench's score with its Fréchet term; cosine: its score without (DeT's default); both 0..1
    (the cosine can go below 0 for opposite motion). Track counts are the whole tracks used; with none in one
    video the scores are undefined (0 here, None in `as_dict`), as for `MotionFidelity`."""

    hybrid: float
    cosine: float
    frechet_similarity: float
    reference_tracks: int
    generated_tracks: int

    def as_dict(self) -> dict:
        values = asdict(self)
        if self.reference_tracks == 0 or self.generated_tracks == 0:
            values |= dict.fromkeys(("hybrid", "cosine", "frechet_similarity"))
        return values


def mtbench_motion_fidelity(
    reference: np.ndarray | VideoFlow,
    generated: np.ndarray | VideoFlow,
    *,
    grid_size: int = 32,
    mask: np.ndarray | None = None,
    box: tuple[float, float, float, float] | None = None,
    seed: int = 0,
) -> MTBenchFidelity:
    """MTBench's motion fidelity of `generated` to `reference` (uint8 frames, [-1, 1] tensors or `video_flow`
    results), as the module docstring says. `mask` or `box`, in reference pixels, keeps the grid points inside it
    in both videos, as DeT's box around the reference's first-frame mask does (lines 114-127)."""
    reference, generated = video_flow(reference), video_flow(generated)
    check_frame_counts(len(reference.frames), len(generated.frames))
    region = region_mask(mask, box, reference.source_size)
    reference_tracks = normalised_tracks(reference, grid_size, region)
    generated_tracks = normalised_tracks(generated, grid_size, region)
    return mtbench_score(reference_tracks, generated_tracks, seed)


def mtbench_from_tracks(
    reference_tracks: np.ndarray,
    generated_tracks: np.ndarray,
    reference_size: tuple[int, int],
    generated_size: tuple[int, int],
    *,
    seed: int = 0,
) -> MTBenchFidelity:
    """MTBench's score on tracks made elsewhere: CoTracker's `pred_tracks` as DeT's evaluation.py gets them
    (`model(video, grid_size=50)`, (1, f, n, 2) or (f, n, 2), x and y in pixels of a (height, width) video, every
    track, visible or not). sma never downloads or runs CoTracker (its code is not on PyPI and its hub entry runs
    remote code): run it where its weights are and pass its tracks (`sma evaluate --tracks`)."""
    tracks = []
    for given, (height, width) in ((reference_tracks, reference_size), (generated_tracks, generated_size)):
        points = np.asarray(given, dtype=np.float64)
        points = points[0] if points.ndim == 4 else points
        if points.ndim != 3 or points.shape[-1] != 2:
            raise ValueError(f"tracks must be (1, f, n, 2) or (f, n, 2), as CoTracker gives them; got {points.shape}")
        tracks.append(points.transpose(1, 0, 2) / np.array([width, height]))
    check_frame_counts(tracks[0].shape[1], tracks[1].shape[1])
    return mtbench_score(*tracks, seed)


TRACKS_SUFFIXES = (".tracks.npy", ".tracks.pt")  # a video's CoTracker tracks beside it: clip.tracks.npy


def load_tracks(path: Path) -> np.ndarray:
    """An array of tracks from .npy (no pickles) or .pt (`torch.load(weights_only=True)`)."""
    import torch

    if not path.is_file():
        raise SmaError(f"no file at {path}")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return torch.load(path, map_location="cpu", weights_only=True).float().numpy()
    except Exception as error:  # a damaged or foreign file: one line, whatever the loader raised
        raise SmaError(f"cannot read {path} as .npy or .pt tracks ({type(error).__name__})") from error


def tracks_beside(video: Path) -> np.ndarray | None:
    """The tracks saved beside a video (VIDEO.tracks.npy or VIDEO.tracks.pt, its name without .mp4), if any."""
    found = [video.with_suffix(suffix) for suffix in TRACKS_SUFFIXES if video.with_suffix(suffix).is_file()]
    return load_tracks(found[0]) if found else None


def mtbench_score(reference_tracks: np.ndarray, generated_tracks: np.ndarray, seed: int = 0) -> MTBenchFidelity:
    """The hybrid, cosine and Fréchet scores of normalised tracks (n, f, 2) and (m, f, 2)."""
    if len(reference_tracks) == 0 or len(generated_tracks) == 0:
        return MTBenchFidelity(0.0, 0.0, 0.0, len(reference_tracks), len(generated_tracks))
    cosine = float(cosine_similarity(generated_tracks, reference_tracks).max(axis=1).mean())
    rng = np.random.default_rng(seed)
    drawn_generated = generated_tracks[rng.integers(0, len(generated_tracks), FRECHET_TRACKS)]
    drawn_reference = reference_tracks[rng.integers(0, len(reference_tracks), FRECHET_TRACKS)]
    frechet = float(frechet_similarity(drawn_generated, drawn_reference).max(axis=1).mean())
    return MTBenchFidelity(
        hybrid=0.5 * cosine + 0.5 * frechet,
        cosine=cosine,
        frechet_similarity=frechet,
        reference_tracks=len(reference_tracks),
        generated_tracks=len(generated_tracks),
    )


def normalised_tracks(flow: VideoFlow, grid_size: int, region: np.ndarray | None = None) -> np.ndarray:
    """The grid's tracks (inside `region`, a mask of any size) followed through the whole clip (n, f, 2), x divided
    by the width and y by the height."""
    height, width = flow.frames.shape[1:3]
    tracks = FlowTracker().chain(flow, grid_in_region(height, width, grid_size, region))
    whole = tracks.positions[tracks.valid.all(axis=1)].astype(np.float64)
    return whole / np.array([width, height])


def cosine_similarity(tracks: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(n, m): mean over rows of [start, steps...] of the dot product of the unit rows (DeT lines 55-86)."""
    rows, other_rows = _unit_rows(tracks), _unit_rows(others)
    return np.einsum("ntc,mtc->nm", rows, other_rows) / rows.shape[1]


def frechet_similarity(tracks: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(n, m): 1 / (1 + the mean distance between every point of track i and every point of track j)."""
    distances = np.linalg.norm(tracks[:, None, :, None] - others[None, :, None, :], axis=-1)  # (n, m, f, f)
    return 1 / (1 + distances.mean(axis=(2, 3)))


def _unit_rows(tracks: np.ndarray) -> np.ndarray:
    return unit_vectors(np.concatenate([tracks[:, :1], np.diff(tracks, axis=1)], axis=1))
