"""`sma evaluate`: motion metrics (and CLIP scores) of generated videos against a reference.

Motion (`sma.evaluation.score`): robust motion fidelity (DIS flow tracks that carry motion), the old
Lucas-Kanade motion fidelity (motion_fidelity_lk), MTBench's, flow-field similarity, warping error and
motion magnitude; the metric card in docs/results.md says how far each can be trusted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        "evaluate",
        help="score generated videos against a reference: motion fidelity and flow metrics, CLIP scores",
        description="Score generated videos against the reference whose motion they should follow.",
    )
    parser.add_argument("reference", type=Path, help="reference video (mp4, mov, webm, avi, mkv, gif or frame folder)")
    parser.add_argument("generated", type=Path, nargs="+", help="generated videos")
    parser.add_argument("--prompt", help="target prompt, for CLIP text alignment")
    parser.add_argument("--clip", default=None, help="CLIP Hub id or folder (default: openai/clip-vit-base-patch32)")
    parser.add_argument("--no-clip", action="store_true", help="skip the CLIP scores")
    parser.add_argument("--frames", type=int, help="frames to read from each video (default: all of the reference)")
    parser.add_argument("--stride", type=int, default=1, help="take every n-th source frame (default 1)")
    parser.add_argument(
        "--grid-size", type=int, help="points per side of every tracked grid (default: each metric's: 32, robust 48)"
    )
    parser.add_argument("--box", help="track only points inside X0,Y0,X1,Y1 (reference pixels)")
    parser.add_argument(
        "--tracks",
        type=Path,
        nargs="+",
        help="CoTracker's tracks (.npy or .pt; (1, f, n, 2) pixels), the reference's then each generated video's: "
        "MTBench's score on them as DeT computes it, beside the one on sma's tracks",
    )
    parser.add_argument("--json", type=Path, help="write the scores to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing JSON file")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    from sma.video.files import existing

    for path in (arguments.reference, *arguments.generated):  # before the metric libraries load
        existing(path)
    from sma.evaluation import HEADLINE, score, table_text, track_warning
    from sma.metrics import motion_magnitude, video_flow, warping_error
    from sma.metrics.clip import DEFAULT_CLIP
    from sma.metrics.motion_fidelity import colour_fallback_note
    from sma.video.atomic import atomic_output, check_writable

    _check_numbers(arguments)
    if arguments.json is not None:
        check_writable(arguments.json, arguments.overwrite)
        _check_folder_writable(arguments.json.parent)
    box = _parse_box(arguments.box)
    reference, generated = _read_all(arguments)
    _check_box_inside(box, reference.shape[2], reference.shape[1])
    reference_flow = video_flow(reference)
    results = [
        {"video": str(path)}
        | score(reference, frames, reference_flow=reference_flow, grid_size=arguments.grid_size, box=box)
        for path, frames in generated
    ]
    if arguments.tracks:
        _add_tracked_scores(results, arguments.tracks, reference, [frames for _, frames in generated])
    for result in results:
        if warning := track_warning(result):
            null = " (null in --json)" if result[HEADLINE] is None else ""
            print(f"sma: warning: {result['video']}: {warning}{null}", file=sys.stderr)
        if note := colour_fallback_note(result["robust_tracker"]):
            tracks = f"{result['robust_reference_tracks']} reference and {result['robust_generated_tracks']} output"
            print(f"sma: note: {result['video']}: its robust score rests on {tracks} tracks; {note}", file=sys.stderr)
    clip_name = None if arguments.no_clip else (arguments.clip or DEFAULT_CLIP)
    if clip_name is not None:
        _add_clip_scores(results, [frames for _, frames in generated], clip_name, arguments.prompt, arguments.clip)
    print(table_text(results))
    if arguments.json is not None:
        report = {
            "reference": str(arguments.reference),
            "lk_tracker": results[0]["lk_tracker"],
            "motion_fidelity_lk_form": "one-sided (DMT): mean over generated tracks of the best reference match",
            "robust_tracker": results[0]["robust_tracker"],
            "robust_motion_fidelity_form": "one-sided, over tracks that carry motion, weighted by their travel",
            "mtbench_motion_fidelity_form": "DeT's MTBench hybrid: 0.5 cosine + 0.5 1/(1 + mean point distance), "
            "on whole DIS-flow tracks (sma.metrics.mtbench)",
            "reference_warping_error": warping_error(reference_flow),
            "reference_motion_magnitude": motion_magnitude(reference_flow),
            "clip_model": clip_name,
            "prompt": arguments.prompt,
            "generated": results,
        }
        with atomic_output(arguments.json, arguments.overwrite) as temporary:
            temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def _read_all(arguments: argparse.Namespace):
    """Read every video before scoring any, so a bad file fails fast and nothing is written."""
    from sma.video.reading import read_video

    reference = read_video(arguments.reference, arguments.frames, stride=arguments.stride)
    size = reference.shape[1:3]
    generated = [
        (path, read_video(path, len(reference), stride=arguments.stride, size=size)) for path in arguments.generated
    ]
    return reference, generated


def _add_tracked_scores(results: list[dict], paths: list[Path], reference, videos: list) -> None:
    """MTBench's hybrid on the given tracks (`mtbench_from_tracks`) as "mtbench_cotracker" of each result."""
    from sma.errors import SmaError
    from sma.metrics.mtbench import mtbench_from_tracks
    from sma.video import VideoError

    if len(paths) != 1 + len(videos):
        raise SmaError(
            f"--tracks takes the reference's tracks, then one file per generated video: {1 + len(videos)} files, "
            f"got {len(paths)}"
        )
    reference_tracks = _load_tracks(paths[0])
    for result, path, video in zip(results, paths[1:], videos, strict=True):
        try:
            score = mtbench_from_tracks(reference_tracks, _load_tracks(path), reference.shape[1:3], video.shape[1:3])
        except (ValueError, VideoError) as error:
            raise SmaError(f"--tracks {path}: {error}") from error
        result["mtbench_cotracker"] = score.as_dict()["hybrid"]


def _load_tracks(path: Path):
    from sma.errors import SmaError
    from sma.metrics.mtbench import load_tracks

    try:
        return load_tracks(path)
    except SmaError as error:
        raise SmaError(f"--tracks: {error}") from error


def _add_clip_scores(results: list[dict], videos: list, clip_name: str, prompt: str | None, asked: str | None) -> None:
    """CLIP scores, skipped (saying why) when the Hub model is unavailable; a named folder that does not exist
    is an error, not a skip."""
    from sma.backbones.hub import local_folder
    from sma.metrics.clip import ClipUnavailableError, clip_frame_consistency, clip_text_alignment, load_clip

    if asked is not None:
        local_folder(asked, "a folder holding a CLIP model")
    try:
        scorer = load_clip(clip_name)
    except ClipUnavailableError as error:
        print(f"sma: CLIP scores skipped: {error}", file=sys.stderr)
        return
    for result, frames in zip(results, videos, strict=True):
        result["clip_frame_consistency"] = clip_frame_consistency(frames, scorer)
        if prompt is not None:
            result["clip_text_alignment"] = clip_text_alignment(frames, prompt, scorer)


def _check_numbers(arguments: argparse.Namespace) -> None:
    from sma.errors import SmaError

    if arguments.stride < 1:
        raise SmaError(f"--stride must be >= 1, got {arguments.stride}")
    if arguments.grid_size is not None and arguments.grid_size < 2:
        raise SmaError(f"--grid-size must be >= 2 points per side, got {arguments.grid_size}")
    if arguments.frames is not None and arguments.frames < 2:
        raise SmaError(f"--frames must be >= 2: motion needs at least two frames, got {arguments.frames}")


def _check_folder_writable(folder: Path) -> None:
    """Fail before any scoring when the JSON could not be written (its nearest existing folder is read-only)."""
    from sma.errors import SmaError
    from sma.video.atomic import can_write_in

    existing = folder.resolve()
    while not existing.exists():
        existing = existing.parent
    if not can_write_in(existing):
        raise SmaError(f"cannot write the JSON into {folder}: {existing} is not writable")


def _check_box_inside(box, width: int, height: int) -> None:
    from sma.errors import SmaError

    if box is not None and (box[0] >= width or box[1] >= height or box[2] <= 0 or box[3] <= 0):
        raise SmaError(f"--box {','.join(f'{value:g}' for value in box)} lies outside the {width}x{height} reference")


def _parse_box(text: str | None):
    from sma.errors import SmaError

    if text is None:
        return None
    try:
        x0, y0, x1, y1 = (float(value) for value in text.split(","))
    except ValueError:
        raise SmaError(f"--box takes X0,Y0,X1,Y1 in reference pixels, not {text!r}") from None
    if x1 <= x0 or y1 <= y0:
        raise SmaError(f"--box {text} is empty: X1 must exceed X0 and Y1 exceed Y0")
    return x0, y0, x1, y1
