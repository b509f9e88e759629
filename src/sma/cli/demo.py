"""`sma demo`: motion transfer on the embedded model, with and without SMA, in a few minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

from sma.cli.flags import DefaultsHelpFormatter


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="transfer a synthetic motion to new appearances on the embedded model (a few minutes on a CPU)",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("sma-demo"), help="run folder")
    parser.add_argument(
        "--world",
        choices=("simple", "hard"),
        default="simple",
        help="the simple world's case (a shape on plain white) or the hard world's (textures, a panning camera)",
    )
    parser.add_argument("--steps", type=int, default=150, help="VMC training steps per run")
    parser.add_argument("--sampling-steps", type=int, default=25, help="DDIM steps of inversion and sampling")
    parser.add_argument("--seed", type=int, default=0, help="seed of training and sampling")
    parser.add_argument("--model", help="another model folder or Hub id (default: the world's embedded model)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing demo folder")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    from sma.demo import CASES, run_demo
    from sma.evaluation import table_text
    from sma.report import read_metrics

    run_dir = run_demo(
        arguments.out,
        world=arguments.world,
        model=arguments.model,
        steps=arguments.steps,
        sampling_steps=arguments.sampling_steps,
        seed=arguments.seed,
        overwrite=arguments.overwrite,
    )
    summary = read_metrics(run_dir)["summary"]
    rows = [{"videos": label} | values for label, values in summary.items()]
    print(table_text(rows, label="videos", keys=CASES[arguments.world].columns))
    print(f"results in {run_dir}: comparison.mp4 (and .gif), reference/untuned/inverted/sma/nosma videos, metrics.json")
    return 0
