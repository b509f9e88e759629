"""Fuzzed inputs: recipes, suites and flag values of any shape, damaged videos and adapters. Whatever comes in,
sma answers with a result or with one line naming what is wrong (an SmaError, or argparse's usage error), never
a traceback.

The examples are derandomized (the same ones every run, so a failure is never a fluke); `make faults` runs more.
"""

import argparse
import contextlib
import io
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sma.adapter import ABOUT_FILE, REFERENCE_FILE, TENSORS_FILE, Adapter
from sma.benchmark import read_suite
from sma.cli import build_parser, main
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.recipes import flatten, load_config
from sma.runs import train
from sma.video import probe_video, read_video

EXAMPLES = 400 if os.environ.get("SMA_FAULTS") == "all" else 30
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEYS = [*sorted(flatten(TransferConfig().to_dict())), "method", "vmc.unknown", "sma", "train", "nonsense"]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["vmc", "dmt", "flowmotion", "haar", "db4", "auto", "fp16", "1e309", "-1", "0", "nan"])
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner))


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message.strip(), repr(message)
    return message


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_any_recipe_loads_or_is_one_line(tmp_path, values):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(nested(values)))
    try:
        load_config(recipe)
    except SmaError as error:
        one_line(error)


@FUZZ
@given(st.text(max_size=200))
def test_any_recipe_text_loads_or_is_one_line(tmp_path, text):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    try:
        load_config(recipe)
    except SmaError as error:
        one_line(error)


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "methods": VALUES | st.lists(st.sampled_from(["vmc", "dmt", "motiondirector", "x"]), max_size=3),
            "variants": VALUES | st.dictionaries(st.sampled_from(["sma", "nosma"]), VALUES, max_size=2),
            "references": VALUES | st.lists(st.dictionaries(st.sampled_from(["path", "scene", "x"]), VALUES)),
            "seeds": VALUES,
            "set": VALUES,
            "clips": VALUES,
            "extra": VALUES,
        },
    )
)
def test_any_suite_reads_or_is_one_line(tmp_path, values):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(values))
    try:
        read_suite(suite)
    except SmaError as error:
        one_line(error)


def value_flags(command: str) -> list[str]:
    """The flags of `command` that take a value."""
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return sorted(
        flag
        for action in commands.choices[command]._actions
        if action.option_strings and action.nargs != 0 and action.dest not in ("out", "help")
        for flag in action.option_strings
        if flag.startswith("--")
    )


@pytest.mark.parametrize("command", ["train", "generate", "transfer"])
def test_any_flag_value_is_one_line(tmp_path, reference, command):
    flags = value_flags(command)
    source = str(reference) if command != "generate" else str(tmp_path / "no-adapter")

    @FUZZ
    @given(st.lists(st.tuples(st.sampled_from(flags), st.text(max_size=10) | SCALARS.map(str)), max_size=4))
    def check(chosen):
        out = Path(tmp_path / "out")
        argv = [command, source, "--out", str(out)]
        for flag, value in chosen:
            argv += [flag, value]
        argv += ["--model", str(tmp_path / "no-model")]  # a config that passes its checks fails fast here
        printed = io.StringIO()
        with contextlib.redirect_stderr(printed), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exit:  # argparse: usage, then one line naming the flag
                code = exit.code
        shutil.rmtree(out, ignore_errors=True)
        assert code == 2, (argv, printed.getvalue())
        assert "Traceback" not in printed.getvalue()
        assert printed.getvalue().strip().splitlines()[-1].startswith(("sma: error: ", "sma ")), printed.getvalue()

    check()


def damaged(data: bytes, rng: random.Random) -> bytes:
    """`data` cut short, or with a few bits flipped past its first bytes."""
    if rng.random() < 0.4:
        return data[: rng.randrange(len(data))]
    flipped = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        index = rng.randrange(min(32, len(data) - 1), len(data))
        flipped[index] ^= 1 << rng.randrange(8)
    return bytes(flipped)


@FUZZ
@given(st.integers(0, 2**32))
def test_a_damaged_video_reads_or_is_one_line(reference, tmp_path, seed):
    path = tmp_path / "damaged.mp4"
    path.write_bytes(damaged(Path(reference).read_bytes(), random.Random(seed)))
    try:
        probe_video(path)
        frames = read_video(path)
    except SmaError as error:
        one_line(error)
        return
    assert frames.dtype == np.uint8 and frames.ndim == 4


@pytest.fixture(scope="module")
def adapter(model_dir, reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    config = load_config(
        overrides={"model": str(model_dir), "video.frames": 4, "video.height": 16, "video.width": 16, "train.steps": 1}
    )
    train(config, reference, out)
    return out / "adapter"


@FUZZ
@given(st.sampled_from([ABOUT_FILE, TENSORS_FILE, REFERENCE_FILE]), st.integers(0, 2**32))
def test_a_damaged_adapter_loads_or_is_one_line(adapter, tmp_path, name, seed):
    copy = tmp_path / "adapter"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(adapter, copy)
    target = copy / name
    target.write_bytes(damaged(target.read_bytes(), random.Random(seed)))
    try:
        Adapter.load(copy)
    except SmaError as error:
        one_line(error)


def nested(values: dict) -> dict:
    """Dotted keys as the nested mapping a recipe file holds (a key that is both a value and a section: the
    section wins)."""
    tree: dict = {}
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for parent in parents:
            node = node[parent] if isinstance(node.get(parent), dict) else node.setdefault(parent, {})
            if not isinstance(node, dict):
                break
        else:
            node[leaf] = value
    return tree
