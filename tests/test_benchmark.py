"""`sma benchmark`: suites checked before any work, cells run through the real transfer on a tiny model,
resumable, and paired differences that match a hand computation."""

import json

import pytest
import yaml

from sma.benchmark import cell_config, paired_differences, read_results, read_suite, run_suite, summarise, table
from sma.cli import main
from sma.errors import SmaError
from sma.runs import transfer


def write_suite(folder, model_dir, **changes):
    """Two cells on the tiny model: VMC with and without SMA on a synthetic reference, one target."""
    suite = {
        "name": "tiny",
        "model": str(model_dir),
        "seeds": [0],
        "frames": 8,
        "size": 32,
        "steps": 2,
        "overrides": {"train.checkpoint_every": 2, "generate": {"steps": 2, "inversion_steps": 2}},
        "methods": ["vmc"],
        "variants": ["sma", "nosma"],
        "references": [
            {
                "synthetic": {"shape": "circle", "colour": "red", "motion": "linear", "size": 0.4},
                "targets": [{"colour": "blue", "shape": "square"}],
            }
        ],
        **changes,
    }
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


class Counting:
    """The real `sma.runs.transfer`, counted; `fail_on` raises after that call finished its run folder."""

    def __init__(self, fail_on=None):
        self.calls, self.fail_on = [], fail_on

    def __call__(self, config, reference, out, *, overwrite):
        self.calls.append(out.name)
        run_dir = transfer(config, reference, out, overwrite=overwrite)
        if len(self.calls) == self.fail_on:
            raise KeyboardInterrupt
        return run_dir


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seed": [1]}, "unknown key seed in the suite: valid keys are name, model, seeds"),
        ({"variants": ["sma", "half"]}, "unknown variant 'half': use one of sma, nosma, global-only, local-only"),
        ({"variants": ["nosma", {"name": "off", "sma": {"enabled": False}}]}, "at most one variant may turn SMA off"),
        ({"methods": ["vmc", "sora"]}, "unknown method 'sora' in the suite"),
        ({"methods": {"vmc": {"recipe": "missing.yaml"}}}, "methods.vmc: no recipe file at"),
        ({"references": [{"path": "missing.mp4", "prompt": "x", "targets": ["y"]}]}, "no reference video at"),
        ({"references": [{"synthetic": {"motion": "fly"}, "targets": ["y"]}]}, "motion must be one of"),
        ({"references": [{"synthetic": {}, "targets": ["y"], "colour": "red"}]}, "unknown key colour in references"),
        ({"references": [{"synthetic": {}}]}, r"references\[0\] needs a list of target prompts"),
        ({"size": "big"}, "size must be an integer or"),
        ({"variants": []}, "the suite names no variants"),
    ],
)
def test_bad_suites_are_one_line_errors(tmp_path, model_dir, changes, message):
    with pytest.raises(SmaError, match=message):
        read_suite(write_suite(tmp_path, model_dir, **changes))


def test_bad_recipe_keys_fail_before_any_cell_runs(tmp_path, model_dir, capsys):
    suite = write_suite(tmp_path, model_dir, overrides={"train.stepz": 3})
    assert main(["benchmark", str(suite), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("sma: error: cell linear-vmc-sma-seed0: unknown recipe key train.")
    assert not (tmp_path / "out").exists()
    assert main(["benchmark", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert "no suite file at" in capsys.readouterr().err


def test_a_run_writes_results_and_table_and_resumes(tmp_path, model_dir, capsys):
    suite = read_suite(write_suite(tmp_path, model_dir))
    out = tmp_path / "out"
    interrupted = Counting(fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out, transfer=interrupted, progress=False)
    assert interrupted.calls == ["linear-vmc-sma-seed0", "linear-vmc-nosma-seed0"]
    assert [record["cell"] for record in read_results(out)] == ["linear-vmc-sma-seed0"]
    assert (out / "cells" / "linear-vmc-nosma-seed0" / "videos").is_dir()  # the interrupted cell's folder

    with pytest.raises(SmaError, match="already holds a benchmark: set `resume`"):
        run_suite(suite, out, progress=False)
    resumed = Counting()
    records = run_suite(suite, out, resume=True, transfer=resumed, progress=False)
    assert resumed.calls == ["linear-vmc-nosma-seed0"]  # the finished cell skipped, the interrupted one redone
    assert [(r["variant"], r["sma"]) for r in records] == [("sma", True), ("nosma", False)]
    for record in records:
        assert record["target"] == "a blue square on a plain white background"
        assert (out / record["video"]).is_file()
        for key in ("robust_motion_fidelity", "robust_two_sided", "flow_cosine", "trajectory_error_px"):
            assert isinstance(record[key], float)
        assert 0.0 <= record["appearance_accuracy"] <= 1.0
    assert [json.loads(line)["cell"] for line in (out / "results.jsonl").read_text().splitlines()] == [
        "linear-vmc-sma-seed0",
        "linear-vmc-nosma-seed0",
    ]
    summary = (out / "summary.md").read_text()
    assert "| vmc | sma | 1 |" in summary and "| vmc | sma minus nosma | 1 |" in summary
    assert "robust MF two-sided" in summary and "trajectory error (px)" in summary
    assert (out / "summary.png").stat().st_size > 0
    assert "train vmc" in (out / "logs" / "linear-vmc-nosma-seed0.log").read_text()  # the cell's bars, off the terminal

    finished = Counting()
    assert main(["benchmark", str(suite.path), "--out", str(out), "--resume"]) == 0
    assert "sma minus nosma" in capsys.readouterr().out
    run_suite(suite, out, resume=True, transfer=finished, progress=False)
    assert finished.calls == []

    changed = read_suite(write_suite(tmp_path, model_dir, steps=3))
    with pytest.raises(SmaError, match="was run with other settings"):
        run_suite(changed, out, resume=True, transfer=finished, progress=False)


def test_a_line_cut_short_is_dropped(tmp_path):
    good = {"cell": "a", "fingerprint": "f"}
    (tmp_path / "results.jsonl").write_text(json.dumps(good) + '\n{"cell": "b", "fin')
    assert read_results(tmp_path) == [good]
    assert (tmp_path / "results.jsonl").read_text() == json.dumps(good) + "\n"
    (tmp_path / "results.jsonl").write_text('{"cell": \n' + json.dumps(good) + "\n")
    with pytest.raises(SmaError, match="line 1 is not JSON"):
        read_results(tmp_path)


def record(method, variant, reference, seed, fidelity, error=None):
    return {
        "method": method,
        "variant": variant,
        "sma": variant != "nosma",
        "reference": reference,
        "target": "t",
        "seed": seed,
        "robust_motion_fidelity": fidelity,
        "trajectory_error_px": error,
    }


def test_paired_differences_match_a_hand_computation():
    records = [
        record("vmc", "nosma", "zigzag", 0, 0.50, 10.0),
        record("vmc", "nosma", "zigzag", 1, 0.70, 12.0),
        record("vmc", "nosma", "circle", 0, 0.20, None),
        record("vmc", "sma", "circle", 0, 0.30, None),  # listed out of order: pairs go by reference and seed
        record("vmc", "sma", "zigzag", 1, 0.60, 9.0),
        record("vmc", "sma", "zigzag", 0, 0.80, 11.0),
        record("vmc", "sma", "zigzag", 2, 0.99, 1.0),  # no baseline with seed 2: left out
        record("md", "sma", "zigzag", 0, 0.10, 5.0),  # another method's: never paired with vmc's baseline
    ]
    (row,) = paired_differences(records)
    assert (row["method"], row["variant"], row["n"]) == ("vmc", "sma minus nosma", 3)
    # fidelity: circle 0.30 - 0.20, zigzag seed 1 0.60 - 0.70, zigzag seed 0 0.80 - 0.50
    mean, low, high = row["robust_motion_fidelity"]
    assert mean == pytest.approx((0.1 - 0.1 + 0.3) / 3)
    assert -0.1 - 1e-12 <= low <= mean <= high <= 0.3 + 1e-12
    # trajectory error only where both sides have it: zigzag seed 1 9 - 12, seed 0 11 - 10
    assert row["trajectory_error_px"][0] == pytest.approx(-1.0)
    assert row["motion_fidelity_lk"] is None

    means = {(r["method"], r["variant"]): r for r in summarise(records)}
    assert means["vmc", "sma"]["robust_motion_fidelity"][0] == pytest.approx((0.3 + 0.6 + 0.8 + 0.99) / 4)
    assert means["md", "sma"]["n"] == 1 and means["md", "sma"]["robust_motion_fidelity"][1:] == (0.1, 0.1)
    text = table(paired_differences(records))
    assert "MF (Lucas-Kanade)" not in text and "| vmc | sma minus nosma | 3 | 0.100 [" in text


def test_cell_configs_layer_recipe_suite_method_and_variant(tmp_path, model_dir):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("method: vmc\nsma: {global_weight: 0.5, local_weight: 0.25}\ntrain: {learning_rate: 1.0e-5}\n")
    variants = ["global-only", {"name": "double", "scale": 2.0}, {"name": "wavelet", "sma": {"levels": 1}}]
    methods = {"vmc": {"recipe": "recipe.yaml", "overrides": {"train": {"learning_rate": 1.0e-3}}}}
    suite = read_suite(write_suite(tmp_path, model_dir, variants=variants, methods=methods))
    configs = {cell.variant.name: cell_config(suite, cell, "some/model") for cell in suite.cells()}
    assert (configs["global-only"].sma.global_weight, configs["global-only"].sma.local_weight) == (0.5, 0.0)
    assert (configs["double"].sma.global_weight, configs["double"].sma.local_weight) == (1.0, 0.5)
    assert configs["wavelet"].sma.levels == 1 and configs["wavelet"].sma.enabled
    for config in configs.values():
        assert config.train.learning_rate == 1e-3 and config.train.steps == 2 and config.video.height == 32
        assert config.model == "some/model" and config.targets == ["a blue square on a plain white background"]
