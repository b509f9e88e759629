"""`score`: every score of an output against its reference, the one function `sma evaluate`, run reports,
`sma demo`, `sma benchmark` and the page use; with a synthetic reference's ground truth, the metrics only it
allows (trajectory, objects found by colour, appearance, the camera, leakage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sma.evaluation.table import MIN_TRACKS

MOVING_CAMERA_SEEN_ON = ("textured", "checkered", "spotted")  # backgrounds that pin a camera's motion both ways
TEXTURES = ("textured", "striped", "checkered", "spotted")


@dataclass(frozen=True)
class Target:
    """A target prompt; `objects` ((colour, shape) pairs, in the reference's order) and `background` (a kind
    of `sma.video.synthetic.BACKGROUNDS`) are set when it asks for synthetic shapes, so the output can be
    checked for them (appearance, each object's path found by its colour)."""

    prompt: str
    objects: tuple[tuple[str, str], ...] = ()
    background: str | None = None


@dataclass(frozen=True)
class GroundTruth:
    """What a synthetic reference knows: its `clip` (rendered with the `background` kind), the `target` the output
    was asked for, and which of the clip's frames the run read (from `start`, every `stride`)."""

    clip: Any  # sma.video.synthetic.SyntheticVideo
    background: str
    target: Target
    start: int = 0
    stride: int = 1


def score(
    reference: np.ndarray,
    frames: np.ndarray,
    *,
    reference_flow=None,
    grid_size: int | None = None,
    box: tuple[float, float, float, float] | None = None,
    truth: GroundTruth | None = None,
) -> dict[str, Any]:
    """Every score of `frames` against `reference` (same frame count and size), under the keys of
    `sma.evaluation.METRICS`, with the trackers and track counts behind them. `reference_flow` (its `video_flow`)
    saves computing it again for each output; `grid_size` and `box` reach every tracked grid (default: each
    metric's own grid). The robust score falls back on colour flow where grey keeps fewer than MIN_TRACKS tracks."""
    from sma.metrics import (
        flow_similarity,
        motion_fidelity,
        motion_magnitude,
        robust_motion_fidelity,
        video_flow,
        warping_error,
    )
    from sma.metrics.mtbench import mtbench_motion_fidelity

    reference_flow = video_flow(reference) if reference_flow is None else reference_flow
    flow = video_flow(frames)
    grid = {"box": box} if grid_size is None else {"box": box, "grid_size": grid_size}
    robust = robust_motion_fidelity(reference_flow, flow, min_tracks=MIN_TRACKS, **grid).as_dict()
    lk = motion_fidelity(reference, frames, **grid).as_dict()
    mtbench = mtbench_motion_fidelity(reference_flow, flow, **grid).as_dict()
    similarity = flow_similarity(reference_flow, flow)
    magnitude, reference_magnitude = motion_magnitude(flow), motion_magnitude(reference_flow)
    scores = {
        "robust_motion_fidelity": robust["motion_fidelity"],
        "robust_reference_to_generated": robust["reference_to_generated"],
        "robust_two_sided_mean": robust["two_sided_mean"],
        "robust_reference_tracks": robust["reference_tracks"],
        "robust_generated_tracks": robust["generated_tracks"],
        "robust_tracker": robust["tracker"],
        "motion_fidelity_lk": lk["motion_fidelity"],
        "motion_fidelity_lk_reference_to_generated": lk["reference_to_generated"],
        "motion_fidelity_lk_two_sided_mean": lk["two_sided_mean"],
        "lk_reference_tracks": lk["reference_tracks"],
        "lk_generated_tracks": lk["generated_tracks"],
        "lk_tracker": lk["tracker"],
        "mtbench_motion_fidelity": mtbench["hybrid"],
        "mtbench_cosine": mtbench["cosine"],
        "flow_cosine": similarity.cosine,
        "flow_endpoint_error": similarity.endpoint_error,
        "flow_relative_endpoint_error": similarity.relative_endpoint_error,
        "warping_error": warping_error(flow),
        "motion_magnitude": magnitude,
        "motion_magnitude_ratio": _ratio(magnitude, reference_magnitude),
    }
    return scores | (ground_truth_scores(truth, reference, frames) if truth is not None else {})


PROTOCOLS = ("mtbench", "paper")  # the field's tables a suite can be scored for (`protocol_scores`)


def protocol_scores(protocol: str, frames: np.ndarray, prompt: str, clip, dino=None) -> dict[str, float]:
    """The scores of a field's table that need CLIP (`clip`, a `ClipScorer`) or DINO (`dino`, a `DinoScorer`).
    "mtbench": DeT's text fidelity (CLIP score of the prompt as DeT writes it) and temporal consistency (DINO);
    "paper": the SMA paper's CLIP text alignment and frame consistency (mean cosines)."""
    from sma.metrics.clip import clip_frame_consistency, clip_score, clip_text_alignment
    from sma.metrics.dino import temporal_consistency

    if protocol == "mtbench":
        return {
            "mtbench_text_fidelity": clip_score(frames, mtbench_prompt(prompt), clip),
            "mtbench_temporal_consistency": temporal_consistency(frames, dino),
        }
    return {
        "clip_text_alignment": clip_text_alignment(frames, prompt, clip),
        "clip_frame_consistency": clip_frame_consistency(frames, clip),
    }


def mtbench_prompt(prompt: str) -> str:
    """The text DeT's CLIP score reads: its output folder's name turned back into a sentence, so the prompt without
    surrounding spaces and with one final full stop (evaluation.py lines 137-141 and 217)."""
    prompt = prompt.strip()
    return prompt.removesuffix(".") + "."


def _ratio(value: float, reference: float) -> float:
    """value / reference; a still reference gives 1 against a still video and infinity against a moving one."""
    if reference > 0:
        return value / reference
    return float("inf") if value > 0 else 1.0


def ground_truth_scores(truth: GroundTruth, reference: np.ndarray, frames: np.ndarray) -> dict[str, Any]:
    """The metrics of an output `frames` that only a synthetic reference allows, on the clip's frames the run
    read (`reference`).

    trajectory_error_px: objects followed by tracking from their true start. Where the target names
    every object's colour and shape: object_error_px (each found by its colour, matched to the
    reference's in order), appearance_accuracy and colour_leakage (the reference's object colours
    the target did not ask for). camera_error_px where both backgrounds show a camera's motion
    (MOVING_CAMERA_SEEN_ON); texture_leakage where the reference's background is textured.
    """
    from sma.metrics import camera_error, colour_leakage, colour_trajectory_error, texture_leakage, trajectory_error
    from sma.metrics.appearance import appearance_accuracy
    from sma.video.synthetic import rgb

    clip, target = truth.clip, truth.target
    taken = slice(truth.start, truth.start + truth.stride * len(frames), truth.stride)
    trajectories, sizes = clip.trajectories[:, taken], clip.sizes[:, taken]
    scores: dict[str, Any] = {"trajectory_error_px": trajectory_error(frames, trajectories, sizes).mean_error}
    reference_colours = [rgb(obj.colour) for obj in clip.objects]
    if len(target.objects) == len(clip.objects):
        colours = [rgb(colour) for colour, _ in target.objects]
        objects = colour_trajectory_error(frames, trajectories, colours)
        scores["object_error_px"] = objects.mean_error
        scores["object_errors_px"] = objects.per_object
        scores["objects_found"] = objects.found
        scores["appearance_accuracy"] = float(
            np.mean(
                [
                    appearance_accuracy(frames, colour, shape, avoid)
                    for colour, (_, shape), avoid in zip(colours, target.objects, reference_colours, strict=True)
                ]
            )
        )
        scores["colour_leakage"] = colour_leakage(frames, reference_colours, allowed=colours)
    if truth.background in MOVING_CAMERA_SEEN_ON and target.background in MOVING_CAMERA_SEEN_ON:
        first = np.linalg.inv(np.vstack([clip.camera[truth.start], [0, 0, 1]]))
        scores["camera_error_px"] = camera_error(frames, clip.camera[taken] @ first).mean_error
    if truth.background in TEXTURES:
        scores["texture_leakage"] = texture_leakage(reference, frames, clip.masks[taken])
    return scores
