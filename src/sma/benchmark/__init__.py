"""Benchmark suites: many transfers from one YAML file, every output measured, one table with intervals.

A suite (`suite`) names references (video files, or synthetic clips whose true motion is known),
their prompts and target prompts, methods, SMA variants and seeds. Every (reference, method,
variant, seed) is a cell (`cells`): one `sma.runs.transfer` into OUT/cells/<cell>/, generating every
target of its reference. Each output is scored by `sma.evaluation.score` (with the ground truth of
a synthetic reference) and appended to OUT/results.jsonl as its cell finishes (`runner`), so a rerun
with `resume` skips finished cells and redoes an interrupted one; cells run in this process or as Ray tasks on a
cluster (`executors`), and a cell that fails goes to OUT/failures.jsonl while the others go on;
OUT/settings.yaml holds the suite as run (with every `--set`), the sma commit and the model's digest.
OUT/summary.md holds means with 95% bootstrap intervals per method and variant, and paired differences against the same
method without SMA (same reference, target and seed), overall and per reference (`stats`, `summary`);
OUT/summary.png and OUT/differences.png plot them. A folder in MTBench's layout is a suite too, and a suite's
`protocol` adds the field's scores and tables (`field`): MTBench's (DeT) and the SMA paper's.
"""

from sma.benchmark.cells import cell_config, evaluate_cell, fingerprint, model_digest, reference_clip
from sma.benchmark.executors import InProcess, Outcome, RayExecutor
from sma.benchmark.runner import (
    FAILURES_FILE,
    RESULTS_FILE,
    SETTINGS_FILE,
    append_results,
    merge_parts,
    read_failures,
    read_results,
    run_suite,
)
from sma.benchmark.stats import pair_up, paired_differences, summarise
from sma.benchmark.suite import Suite, mtbench_suite, read_suite, select, with_settings
from sma.benchmark.summary import summary_text, table, write_summary

__all__ = [
    "FAILURES_FILE",
    "RESULTS_FILE",
    "SETTINGS_FILE",
    "InProcess",
    "Outcome",
    "RayExecutor",
    "Suite",
    "append_results",
    "cell_config",
    "evaluate_cell",
    "fingerprint",
    "merge_parts",
    "model_digest",
    "mtbench_suite",
    "pair_up",
    "paired_differences",
    "read_failures",
    "read_results",
    "read_suite",
    "reference_clip",
    "run_suite",
    "select",
    "summarise",
    "summary_text",
    "table",
    "with_settings",
    "write_summary",
]
