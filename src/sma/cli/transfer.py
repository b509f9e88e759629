"""`sma transfer`: train on a reference video, then generate every target prompt."""

from __future__ import annotations

import argparse
from pathlib import Path

from sma.cli.flags import IMAGE_FLAGS, TARGET_FLAG, TRAINING_FLAGS, UNTUNED_FLAG, add_flags, overrides


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `transfer` and `train`; flags override the recipe."""
    parser.add_argument(
        "reference",
        type=Path,
        nargs="*",
        help="reference video (mp4, gif, ... or a folder of frames); several videos of one motion, or a folder of "
        "videos with same-name .txt captions (clip.mp4 + clip.txt), train on all of them (default: the recipe's "
        "references)",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder to create")
    parser.add_argument("--config", help="YAML recipe: a file, or a shipped recipe's name (vmc-zeroscope, ...)")
    add_flags(parser, TRAINING_FLAGS)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")


def config_from(arguments: argparse.Namespace):
    from sma.recipes import load_config

    flags = (*TRAINING_FLAGS, TARGET_FLAG, *IMAGE_FLAGS, UNTUNED_FLAG)
    return load_config(arguments.config, overrides(arguments, flags))


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        "transfer", help="train on a reference video, then generate new appearances that move the same way"
    )
    add_training_arguments(parser)
    add_flags(parser, (TARGET_FLAG, *IMAGE_FLAGS, UNTUNED_FLAG))
    parser.set_defaults(run=run)


def run_in_main_process(command: str, arguments: argparse.Namespace, message: str) -> int:
    """Run `sma.runs.train` or `transfer` (`command`); print where the results are from the main process only. What
    needs no model library (the references given, the run folder, the recipe's keys) is checked before they load: a
    mistake is said in a second, not after seconds of imports (the recipe's method loads them)."""
    from sma.references import check_found
    from sma.run_folder import check_run_dir

    if arguments.reference:
        check_found([str(path) for path in arguments.reference])
    check_run_dir(arguments.out, arguments.overwrite, arguments.resume)
    config = config_from(arguments)

    from accelerate import PartialState

    import sma.runs

    run_dir = getattr(sma.runs, command)(
        config,
        arguments.reference,
        arguments.out,
        overwrite=arguments.overwrite,
        resume=arguments.resume,
    )
    if PartialState().is_main_process:
        curves = ", loss_curves.png" if (run_dir / "loss_curves.png").exists() else ""  # zero-shot methods have none
        print(message.format(run_dir=run_dir, curves=curves, summary=summary(run_dir)))
    return 0


def summary(run_dir: Path) -> str:
    """One line per generated video (and untuned baseline) with its motion fidelity and the tracks it rests on, from
    the run's metrics.json (empty if none); a score on too few tracks or on colour flow says so."""
    from sma.evaluation import score_text, track_warning
    from sma.metrics.motion_fidelity import colour_fallback_note
    from sma.report import read_metrics

    metrics = read_metrics(run_dir)
    lines = []
    for output in metrics.get("outputs", []) + metrics.get("untuned", []):
        tracks = output.get("robust_reference_tracks"), output.get("robust_generated_tracks")
        on = f" on {tracks[0]} reference, {tracks[1]} output tracks" if None not in tracks else ""  # older files: none
        lines.append(
            f"{output['video']}: motion fidelity {score_text(output['robust_motion_fidelity'])} (robust{on}), "
            f"{score_text(output['motion_fidelity_lk'])} (Lucas-Kanade)\n"
        )
        if warning := track_warning(output):
            lines.append(f"  warning: {warning}\n")
        if note := colour_fallback_note(output.get("robust_tracker", "")):
            lines.append(f"  {note}\n")
    return "".join(lines)


def run(arguments: argparse.Namespace) -> int:
    return run_in_main_process(
        "transfer", arguments, "{summary}results in {run_dir}: videos/, comparison.mp4, metrics.json{curves}"
    )
