"""`sma benchmark`: run a suite of transfers, score every output, and print one table with intervals."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import yaml


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        "benchmark",
        help="run a suite of transfers (references x methods x SMA variants x seeds) and tabulate the metrics",
        description="Run a benchmark suite (see benchmarks/suites/) through `sma transfer`, score every output "
        "against its reference, and write OUT/results.jsonl, OUT/settings.yaml (the suite as run, the sma commit, the "
        "model's digest), OUT/summary.md, OUT/summary.png and OUT/differences.png.",
    )
    parser.add_argument(
        "suite",
        type=Path,
        help="suite YAML (references, methods, variants, seeds), or a folder in MTBench's layout (with --methods)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the cells' runs and the results")
    parser.add_argument("--model", help="Hub id or model folder for every cell (default: the suite's, else embedded)")
    parser.add_argument(
        "--clips", type=Path, help="folder the suite's reference paths are relative to (default: its clips: key)"
    )
    parser.add_argument("--seeds", type=_integers, help="run only these of the suite's seeds (a pilot): 0,1")
    parser.add_argument("--references", type=_names, help="run only these of the suite's references: camera-pan")
    parser.add_argument("--methods", type=_names, help="run only these of the suite's methods: vmc,motiondirector")
    parser.add_argument("--variants", type=_names, help="run only these of the suite's variants: sma,nosma")
    parser.add_argument(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        metavar="KEY=VALUE",
        help="a recipe key for every cell, over the suite's and its methods' (repeatable): generate.noise_prior=0",
    )
    parser.add_argument("--clip", help="CLIP Hub id or folder for a protocol's scores (default: the suite's)")
    parser.add_argument("--dino", help="DINO Hub id or folder for MTBench's consistency (default: the suite's)")
    parser.add_argument("--resume", action="store_true", help="skip the cells already finished in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing benchmark in --out")
    parser.add_argument(
        "--executor",
        choices=["in-process", "ray"],
        default="in-process",
        help="run the cells one after another here (default), or each as a Ray task (pip install 'sma[ray]')",
    )
    parser.add_argument(
        "--ray-address", help="the Ray cluster to run on (ray start --head prints it; default: start a local Ray)"
    )
    parser.add_argument("--cpus-per-cell", type=_positive, default=1.0, help="CPUs a Ray task asks for (default 1)")
    parser.add_argument(
        "--gpus-per-cell",
        type=_positive,
        help="GPUs a Ray task asks for, a fraction to share one (default: none without GPUs, else 1, 0.05 for an "
        "embedded model)",
    )
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first cell that fails")
    parser.set_defaults(run=run)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _integers(text: str) -> list[int]:
    try:
        return [int(item) for item in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are comma-separated integers, not {text!r}") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"takes a number of 0 or more, not {text!r}")
    return value


def _setting(text: str) -> tuple[str, object]:
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE (a dotted recipe key), not {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"--set {key}: {value!r} is not a YAML value") from None


def _executor(arguments: argparse.Namespace):
    from sma.benchmark import InProcess, RayExecutor
    from sma.errors import SmaError

    if arguments.executor == "ray":
        return RayExecutor(arguments.ray_address, arguments.cpus_per_cell, arguments.gpus_per_cell)
    if arguments.ray_address or arguments.gpus_per_cell is not None:
        raise SmaError("--ray-address and --gpus-per-cell need --executor ray")
    return InProcess()


def _read(arguments: argparse.Namespace):
    """The suite of a YAML file or of an MTBench folder, with the CLIP and DINO models the command names."""
    from sma.benchmark import mtbench_suite, read_suite
    from sma.errors import SmaError

    if arguments.suite.is_dir():
        suite = mtbench_suite(arguments.suite, arguments.methods, arguments.variants, arguments.model is None)
    else:
        suite = read_suite(arguments.suite, arguments.clips)
    named = {key: getattr(arguments, key) for key in ("clip", "dino") if getattr(arguments, key)}
    if named and not suite.scoring.protocol:
        raise SmaError("--clip and --dino score a suite's protocol: give the suite one (protocol: mtbench or paper)")
    return replace(suite, scoring=replace(suite.scoring, **named))


def run(arguments: argparse.Namespace) -> int:
    from sma.benchmark import read_failures, run_suite, select, summary_text, with_settings

    suite = select(
        _read(arguments),
        seeds=arguments.seeds,
        references=arguments.references,
        methods=arguments.methods,
        variants=arguments.variants,
    )
    suite = with_settings(suite, dict(arguments.settings or ()))
    records = run_suite(
        suite,
        arguments.out,
        model=arguments.model,
        resume=arguments.resume,
        overwrite=arguments.overwrite,
        executor=_executor(arguments),
        fail_fast=arguments.fail_fast,
    )
    print(summary_text(records, suite.name))
    print(f"results in {arguments.out}: results.jsonl, settings.yaml, summary.md, summary.png, differences.png, cells/")
    failures = read_failures(arguments.out)
    for failure in failures:
        print(f"sma: cell {failure['cell']} failed: {failure['error']}", file=sys.stderr)
    if failures:
        print(f"sma: {len(failures)} cells failed (failures.jsonl); --resume runs them again", file=sys.stderr)
    return 1 if failures else 0
