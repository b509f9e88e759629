"""Run a benchmark suite in parallel lanes until a deadline, then merge what finished into one summary.

    python benchmarks/lanes.py benchmarks/suites/hard.yaml --out runs/hard --lanes 20 --minutes 8

Each lane is one `sma benchmark` process (one thread) for one method, one reference and a share of
the seeds, so a deadline leaves every method and kind of motion about as many finished seeds; a
lane runs its cells seed by seed, all variants of a seed together, so paired differences finish
first. Lanes write OUT/lanes/<lane>/ and are resumed when run again; OUT/results.jsonl,
summary.md and summary.png hold every finished cell. The first lane to fail stops them all: on a
lent GPU a mistake should cost a minute, not the budget.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sma.benchmark import merge_parts, read_results, read_suite, select
from sma.errors import SmaError


def lanes(suite, count: int) -> list[dict]:
    """One lane per (method, reference) and share of the seeds when there are lanes for every pair; with fewer, one
    lane per share of the seeds running every pair, so a deadline still leaves each kind of motion its seeds."""
    methods, references = [method.name for method in suite.methods], [reference.name for reference in suite.references]
    pairs = [([method], [reference]) for method in methods for reference in references]
    if count < len(pairs):
        pairs, shares = [(methods, references)], count
    else:
        shares = count // len(pairs)
    return [
        {
            "name": f"{'-'.join(chosen_methods)}-{'-'.join(chosen_references)}-{share}"
            if len(pairs) > 1
            else f"seeds-{share}",
            "methods": chosen_methods,
            "references": chosen_references,
            "seeds": suite.seeds[share::shares],
        }
        for share in range(shares)
        for chosen_methods, chosen_references in pairs
        if suite.seeds[share::shares]
    ]


def command(arguments, lane: dict, out: Path) -> list[str]:
    words = [sys.executable, "-m", "sma", "benchmark", str(arguments.suite), "--out", str(out)]
    words += ["--methods", ",".join(lane["methods"]), "--references", ",".join(lane["references"])]
    words += ["--seeds", ",".join(map(str, lane["seeds"]))]
    words += ["--variants", arguments.variants] if arguments.variants else []
    words += [word for setting in arguments.settings or () for word in ("--set", setting)]
    return words + (["--resume"] if out.exists() else [])


def finished_cells(folders: list[Path]) -> int:
    return sum(len({record["cell"] for record in read_results(folder)}) for folder in folders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lanes", type=int, default=2, help="processes at once (one thread each)")
    parser.add_argument("--minutes", type=float, default=60.0, help="stop the lanes after this long")
    parser.add_argument("--seeds", help="only these of the suite's seeds: 0,1")
    parser.add_argument("--methods", help="only these of the suite's methods")
    parser.add_argument("--variants", help="only these of the suite's variants (every lane runs them)")
    parser.add_argument("--set", dest="settings", action="append", metavar="KEY=VALUE", help="as `sma benchmark`")
    arguments = parser.parse_args()
    try:
        suite = select(
            read_suite(arguments.suite),
            seeds=[int(seed) for seed in arguments.seeds.split(",")] if arguments.seeds else None,
            methods=arguments.methods.split(",") if arguments.methods else None,
        )
    except ValueError:
        sys.exit(f"error: --seeds takes comma-separated integers, not {arguments.seeds!r}")
    except SmaError as error:
        sys.exit(f"error: {error}")
    plan = lanes(suite, arguments.lanes)
    folders = [arguments.out / "lanes" / lane["name"] for lane in plan]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    waiting, running, failed, reported = list(zip(plan, folders, strict=True)), {}, None, 0
    start = time.monotonic()
    deadline = start + 60 * arguments.minutes
    while (waiting or running) and time.monotonic() < deadline and failed is None:
        while waiting and len(running) < arguments.lanes:
            lane, folder = waiting.pop(0)
            folder.parent.mkdir(parents=True, exist_ok=True)
            log = open(folder.with_suffix(".log"), "a")  # noqa: SIM115 - closed with its process below
            process = subprocess.Popen(
                command(arguments, lane, folder),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )
            running[process] = (folder, log)
        time.sleep(5)
        for process in [process for process in running if process.poll() is not None]:
            folder, log = running.pop(process)
            log.close()
            if process.returncode:
                failed = folder
        if (finished := finished_cells(folders)) != reported:
            minutes, reported = (time.monotonic() - start) / 60, finished
            print(f"{minutes:5.1f} min: {finished} cells finished, {len(running)} lanes running", flush=True)
    for process, (_, log) in running.items():
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        log.close()
    if failed is not None:
        print(f"lane {failed.name} failed; the end of its log:", file=sys.stderr)
        print("\n".join(folder_log_tail(failed)), file=sys.stderr)
    parts = [folder for folder in folders if read_results(folder)]
    if parts:
        records = merge_parts(parts, arguments.out, suite.name)
        cells = len({record["cell"] for record in records})
        print(f"{cells} cells, {len(records)} outputs in {(time.monotonic() - start) / 60:.1f} min: {arguments.out}")
    sys.exit(1 if failed is not None or not parts else 0)


def folder_log_tail(folder: Path, lines: int = 30) -> list[str]:
    return folder.with_suffix(".log").read_text(errors="replace").splitlines()[-lines:]


if __name__ == "__main__":
    main()
