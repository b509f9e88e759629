"""`sma benchmark`: suites checked before any work, cells run through the real transfer on a tiny model,
resumable, and paired differences that match a hand computation."""

import json
import shutil

import pytest
import yaml
from safetensors.torch import load_file, save_file

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
    suite = {key: value for key, value in suite.items() if value is not None}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


class Counting:
    """The real `sma.runs.transfer`, counted; `fail_on` raises after that call finished its run folder."""

    def __init__(self, fail_on=None):
        self.calls, self.fail_on = [], fail_on

    def __call__(self, config, reference, out, *, overwrite, tune):
        self.calls.append(out.name)
        run_dir = transfer(config, reference, out, overwrite=overwrite, tune=tune)
        if len(self.calls) == self.fail_on:
            raise KeyboardInterrupt
        return run_dir


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seed": [1]}, "unknown suite key seed: valid keys here are name, model, world, seeds"),
        ({"world": "harder"}, "world must be one of simple, hard, got 'harder'"),
        ({"references": [{"synthetic": {"objects": [{}], "shape": "star"}, "targets": ["y"]}]}, "inside objects"),
        ({"variants": ["half"]}, "unknown variant 'half': use one of sma, nosma, global-only, local-only, untuned"),
        ({"variants": ["nosma", {"name": "off", "sma": {"enabled": False}}]}, "at most one variant may turn SMA off"),
        ({"methods": ["vmc", "sora"]}, "unknown method 'sora' in the suite"),
        ({"methods": {"vmc": {"recipe": "missing.yaml"}}}, "methods.vmc: no recipe file at"),
        ({"references": [{"path": "missing.mp4", "prompt": "x", "targets": ["y"]}]}, "no reference video at"),
        ({"references": [{"synthetic": {"motion": "fly"}, "targets": ["y"]}]}, "motion must be one of"),
        (
            {"references": [{"synthetic": {}, "targets": ["y"], "colour": "red"}]},
            r"unknown suite key references\[0\].colour",
        ),
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


def test_overwrite_removes_only_a_benchmark_and_a_symlinked_out_is_one_line(tmp_path, model_dir, capsys):
    """Issue 42, finding 7: `--overwrite` deleted any non-empty --out (a folder of photos); a symlinked --out was a
    traceback."""
    suite = str(write_suite(tmp_path, model_dir))
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"a photo")
    (tmp_path / "linked").symlink_to(photos)
    messages = {
        photos: "holds no benchmark (settings.yaml): choose another output folder",
        tmp_path / "linked": f"is a symbolic link (to {photos}): give the folder itself",
    }
    for out, message in messages.items():
        assert main(["benchmark", suite, "--out", str(out), "--overwrite"]) == 2
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and message in error, error
    assert (photos / "holiday.jpg").read_bytes() == b"a photo" and len(list(photos.iterdir())) == 1


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
        for key in (
            "robust_motion_fidelity",
            "robust_two_sided_mean",
            "flow_cosine",
            "trajectory_error_px",
            "object_error_px",
        ):
            assert isinstance(record[key], float)
        assert 0.0 <= record["colour_leakage"] <= 1.0 and "camera_error_px" not in record  # a plain background
        assert 0.0 <= record["appearance_accuracy"] <= 1.0
        assert record["mtbench_motion_fidelity"] is None or -1 <= record["mtbench_motion_fidelity"] <= 1
    assert [json.loads(line)["cell"] for line in (out / "results.jsonl").read_text().splitlines()] == [
        "linear-vmc-sma-seed0",
        "linear-vmc-nosma-seed0",
    ]
    summary = (out / "summary.md").read_text()
    assert "| vmc | sma | 1 |" in summary and "| vmc | sma minus nosma | 1 |" in summary
    assert (
        "motion fidelity (robust) ↑" in summary
        and "robust MF two-sided (mean)" in summary
        and "trajectory error (px)" in summary
    )
    plots = ("summary.png", "differences.png", "trade-off.png", "trade-off-differences.png")
    assert all((out / name).stat().st_size > 0 for name in plots)
    assert "train vmc" in (out / "logs" / "linear-vmc-nosma-seed0.log").read_text()  # the cell's bars, off the terminal

    finished = Counting()
    assert main(["benchmark", str(suite.path), "--out", str(out), "--resume"]) == 0
    assert "sma minus nosma" in capsys.readouterr().out
    run_suite(suite, out, resume=True, transfer=finished, progress=False)
    assert finished.calls == []
    from benchmark_scripts import load_script

    assert load_script("summarise").rescore(out) == read_results(out)  # the same videos scored again, the same records

    changed = read_suite(write_suite(tmp_path, model_dir, steps=3))
    with pytest.raises(SmaError, match="was run with other settings"):
        run_suite(changed, out, resume=True, transfer=finished, progress=False)


def test_a_model_retrained_in_place_is_not_resumed_as_the_old_one(tmp_path, model_dir):
    model = shutil.copytree(model_dir, tmp_path / "model")
    suite = read_suite(write_suite(tmp_path, model, variants=["untuned"]))
    out = tmp_path / "out"
    run_suite(suite, out, progress=False)
    (model / "README.md").write_text("a new card")  # the card does not make the outputs
    unchanged = Counting()
    run_suite(suite, out, resume=True, transfer=unchanged, progress=False)
    assert unchanged.calls == []
    moved = shutil.copytree(model, tmp_path / "elsewhere" / "model")  # another checkout or session: the same files
    elsewhere = read_suite(write_suite(tmp_path / "elsewhere", moved, variants=["untuned"]))
    run_suite(elsewhere, out, resume=True, transfer=unchanged, progress=False)
    assert unchanged.calls == []

    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    save_file({name: tensor + 1 for name, tensor in load_file(weights).items()}, weights)
    with pytest.raises(SmaError, match="was run with other settings or another model"):
        run_suite(suite, out, resume=True, transfer=unchanged, progress=False)


def test_the_untuned_control_trains_nothing_and_is_paired_with_every_variant(tmp_path, model_dir):
    suite = read_suite(write_suite(tmp_path, model_dir, variants=["sma", "nosma", "untuned"]))
    out = tmp_path / "out"
    records = run_suite(suite, out, progress=False)
    assert [(r["variant"], r["sma"], r["tuned"]) for r in records] == [
        ("sma", True, True),
        ("nosma", False, True),
        ("untuned", False, False),
    ]
    assert len({r["fingerprint"] for r in records}) == 3  # untuned and nosma share a config, not a fingerprint
    untuned = out / "cells" / "linear-vmc-untuned-seed0"
    assert not (untuned / "adapter").exists() and (out / records[2]["video"]).is_file()
    assert (out / "cells" / "linear-vmc-nosma-seed0" / "adapter").is_dir()
    assert "train vmc" not in (out / "logs" / "linear-vmc-untuned-seed0.log").read_text()
    summary = (out / "summary.md").read_text()
    assert "| vmc | sma minus nosma | 1 |" in summary  # the untuned record is no baseline of SMA's effect
    tuning = summary.split("What the training adds")[1]
    assert "| vmc | sma minus untuned | 1 |" in tuning and "| vmc | nosma minus untuned | 1 |" in tuning


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
        "sma": variant not in ("nosma", "untuned"),
        "tuned": variant != "untuned",
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
        record("vmc", "untuned", "zigzag", 0, 0.05, 20.0),  # no baseline of SMA: the control of the training
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

    from sma.benchmark.stats import tuned, untuned

    by_variant = {row["variant"]: row for row in paired_differences(records, tuned, untuned)}
    assert set(by_variant) == {"nosma minus untuned", "sma minus untuned"}  # zigzag seed 0 only; md has no control
    assert by_variant["sma minus untuned"]["robust_motion_fidelity"][0] == pytest.approx(0.80 - 0.05)
    assert by_variant["nosma minus untuned"]["trajectory_error_px"][0] == pytest.approx(10.0 - 20.0)


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

    from sma.benchmark import with_settings

    settings = {"train.learning_rate": 5.0e-4, "generate.noise_prior": 0.0, "sma.levels": 2}
    configs = {cell.variant.name: cell_config(with_settings(suite, settings), cell, "m") for cell in suite.cells()}
    for config in configs.values():  # over the suite's and the method's keys
        assert (config.train.learning_rate, config.generate.noise_prior, config.train.steps) == (5e-4, 0.0, 2)
    assert configs["double"].sma.levels == 2 and configs["wavelet"].sma.levels == 1  # the variant's keys last


def test_set_on_the_command_line_reaches_every_cell_and_bad_keys_are_one_line_errors(tmp_path, model_dir, capsys):
    suite = write_suite(tmp_path, model_dir, variants=["nosma"])
    out = tmp_path / "out"
    assert main(["benchmark", str(suite), "--out", str(out), "--set", "train.nope=1"]) == 2
    assert "train.nope" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit):
        main(["benchmark", str(suite), "--out", str(out), "--set", "noise_prior"])
    assert "--set takes KEY=VALUE" in capsys.readouterr().err
    assert main(["benchmark", str(suite), "--out", str(out), "--set", "generate.noise_prior=0.25"]) == 0
    (record,) = read_results(out)
    stored = yaml.safe_load((out / "cells" / record["cell"] / "config.yaml").read_text())
    assert stored["generate"]["noise_prior"] == 0.25 and stored["train"]["steps"] == 2
    from sma.benchmark import SETTINGS_FILE, model_digest

    settings = yaml.safe_load((out / SETTINGS_FILE).read_text())  # beside the results: what made them
    assert settings["set"] == {"generate.noise_prior": 0.25} and settings["overrides"]["train.steps"] == 2
    assert settings["model"] == str(model_dir) and settings["model_digest"] == model_digest(str(model_dir))
    assert settings["variants"] == {"nosma": {"sma": {"enabled": False}, "scale": None, "tune": True}}
    assert len(settings["sma_commit"]) == 40 or settings["sma_commit"] == "unknown"


HARD_REFERENCE = {
    "name": "two-objects-pan",
    "synthetic": {
        "objects": [
            {"shape": "star", "colour": "red", "motion": "linear", "start": [0.25, 0.3], "end": [0.7, 0.3]},
            {"shape": "circle", "colour": "blue", "motion": "static", "start": [0.5, 0.7], "body": "waving"},
        ],
        "background": "checkered",
        "background_colours": ["white", "black"],
        "pan": [0.15, 0.0],
        "camera_timing": "stop-and-go",
        "seed": 3,
    },
    "targets": [
        {
            "objects": [{"colour": "yellow", "shape": "square"}, {"colour": "green", "shape": "triangle"}],
            "texture": "spotted",
            "background_colours": ["gray", "white"],
        }
    ],
}


def test_hard_suites_read_their_scenes_and_targets(tmp_path, model_dir):
    suite = read_suite(
        write_suite(tmp_path, model_dir, world="hard", frames=None, size=None, references=[HARD_REFERENCE])
    )
    (reference,) = suite.references
    assert suite.overrides["video.frames"] == 16 and suite.overrides["video.height"] == 64  # the hard world's
    assert [obj.body for obj in reference.synthetic["objects"]] == ["rigid", "waving"]
    assert reference.synthetic["pan"] == (0.15, 0.0) and reference.name == "two-objects-pan"
    assert reference.prompt.endswith("the camera panning from left to right, stopping halfway")
    (target,) = reference.targets
    assert target.prompt == "a yellow square and a green triangle on a spotted gray and white background"
    assert target.objects == (("yellow", "square"), ("green", "triangle")) and target.background == "spotted"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"objects": [{"colour": "red", "shape": "star"}], "colour": "red"}, "inside objects, not beside it"),
        ({"colour": "red", "shape": "star", "texture": "wavy"}, "texture must be one of plain, textured"),
        ({"colour": "red", "shape": "star", "texture": "striped", "background": "white"}, "takes background_colours"),
        ({"objects": [{"colour": "red", "shape": "star"}, {"colour": "red", "shape": "circle"}]}, "its own colour"),
    ],
)
def test_bad_targets_are_one_line_errors(tmp_path, model_dir, target, message):
    references = [{"synthetic": {"shape": "circle"}, "targets": [target]}]
    with pytest.raises(SmaError, match=message):
        read_suite(write_suite(tmp_path, model_dir, references=references))


def test_ground_truth_scores_of_a_perfect_transfer_and_of_a_copy(tmp_path, model_dir):
    from types import SimpleNamespace

    from sma.benchmark import reference_clip
    from sma.evaluation import GroundTruth, ground_truth_scores
    from sma.video import MovingObject, synthetic_video

    suite = read_suite(
        write_suite(tmp_path, model_dir, world="hard", frames=None, size=None, references=[HARD_REFERENCE])
    )
    cell = suite.cells()[0]
    video = SimpleNamespace(start=0, stride=1, frames=16, height=64, width=64)
    _, clip = reference_clip(cell, SimpleNamespace(video=video), tmp_path)
    scene, target = cell.reference.synthetic, cell.reference.targets[0]
    looks = [("yellow", "square"), ("green", "triangle")]
    objects = [
        MovingObject(**{**obj.__dict__, "colour": c, "shape": s})
        for obj, (c, s) in zip(scene["objects"], looks, strict=True)
    ]
    new_look = {
        **scene,
        "objects": objects,
        "background": "spotted",
        "background_colours": ("gray", "white"),
        "seed": 8,
    }
    perfect = synthetic_video(**new_look, num_frames=16).frames  # the same motion, the target's appearance
    truth = GroundTruth(clip, scene["background"], target)
    scores = ground_truth_scores(truth, clip.frames, perfect)
    assert scores["object_error_px"] < 0.6 and scores["objects_found"] == 1.0 and len(scores["object_errors_px"]) == 2
    assert scores["camera_error_px"] < 0.5 and scores["texture_leakage"] < 0.2
    assert scores["colour_leakage"] == 0.0 and scores["appearance_accuracy"] > 0.9
    copy = ground_truth_scores(truth, clip.frames, clip.frames)  # the reference itself
    assert copy["texture_leakage"] == pytest.approx(1.0) and copy["colour_leakage"] > 0.02
    assert copy["appearance_accuracy"] == 0.0 and copy["object_error_px"] > 3  # the target's colours are nowhere
    assert "camera_error_px" in copy  # the reference's texture shows its camera
    still = ground_truth_scores(
        truth, clip.frames, synthetic_video(**{**new_look, "pan": (0.0, 0.0)}, num_frames=16).frames
    )
    assert still["camera_error_px"] > 3 * scores["camera_error_px"] + 2


def test_summary_has_paired_differences_per_reference():
    from sma.benchmark import summary_text

    records = [
        record("vmc", variant, reference, seed, fidelity)
        for reference, gain in (("pan", 0.2), ("zoom", -0.1))
        for seed in (0, 1)
        for variant, fidelity in (("nosma", 0.5), ("sma", 0.5 + gain))
    ]
    text = summary_text(records, "t")
    assert "Paired differences per reference (kind of motion):" in text
    pan, zoom = text.split("**pan**")[1].split("**zoom**")
    assert "| vmc | sma minus nosma | 2 | 0.200 [0.200, 0.200] |" in pan
    assert "| vmc | sma minus nosma | 2 | -0.100 [-0.100, -0.100] |" in zoom


def test_the_shipped_hard_suite_shows_what_it_claims(tmp_path):
    """Every reference of benchmarks/suites/hard.yaml keeps its objects in view, and the ground-truth metrics
    score a reference against itself as a perfect transfer of its motion, with all of its texture left."""
    from pathlib import Path
    from types import SimpleNamespace

    from sma.benchmark import reference_clip
    from sma.evaluation import GroundTruth, Target, ground_truth_scores

    suite = read_suite(Path(__file__).parents[1] / "benchmarks" / "suites" / "hard.yaml")
    assert len(suite.cells()) == 10 * 5 * 2 * 9 and suite.overrides["sma.levels"] == 3
    video = SimpleNamespace(start=0, stride=1, frames=16, height=64, width=64)
    kinds = set()
    for reference in suite.references:
        cell = next(cell for cell in suite.cells() if cell.reference is reference)
        _, clip = reference_clip(cell, SimpleNamespace(video=video), tmp_path)
        assert clip.frames.shape == (16, 64, 64, 3)
        assert clip.trajectories.min() > 0.1 * 64 and clip.trajectories.max() < 0.9 * 64
        colours = [(obj.colour, obj.shape) for obj in clip.objects]
        itself = Target(reference.prompt, tuple(colours), reference.synthetic["background"])
        truth = GroundTruth(clip, reference.synthetic["background"], itself)
        scores = ground_truth_scores(truth, clip.frames, clip.frames)
        assert scores["object_error_px"] < 0.6 and scores["camera_error_px"] < 0.5
        assert scores["texture_leakage"] == pytest.approx(1.0) and scores["colour_leakage"] == 0.0  # colours asked for
        for target in reference.targets:  # new looks: other colours and another texture
            assert {c for c, _ in target.objects}.isdisjoint({c for c, _ in colours})
            assert target.background != reference.synthetic["background"]
        kinds.add(reference.name)
    assert kinds == {"camera-pan", "camera-zoom", "two-objects", "non-rigid", "speed-change"}


def test_the_shipped_share_suite_has_the_arms_issue_41_asks_for():
    """benchmarks/suites/hard-share.yaml: VMC and MotionDirector without SMA, at shares 0.05 and 0.2, at 0.2 weighted
    by alpha_bar, and untuned (the positive control); 40 pairs per arm (5 references x 2 targets x 4 seeds)."""
    from pathlib import Path

    suite = read_suite(Path(__file__).parents[1] / "benchmarks" / "suites" / "hard-share.yaml")
    arms = {variant.name: (variant.sma, variant.tune) for variant in suite.variants}
    assert arms == {
        "nosma": ({"enabled": False}, True),
        "share-0.05": ({"enabled": True, "share": 0.05}, True),
        "share-0.2": ({"enabled": True, "share": 0.2}, True),
        "share-0.2-abar": ({"enabled": True, "share": 0.2, "timestep_weight": "alpha_bar"}, True),
        "untuned": ({"enabled": False}, False),
    }
    assert [method.name for method in suite.methods] == ["vmc", "motiondirector"]
    assert sum(len(reference.targets) for reference in suite.references) * len(suite.seeds) == 40
    assert len(suite.cells()) == 200 and suite.cells()[0].seed == 0 and suite.cells()[-1].seed == 3


def test_a_pilot_runs_part_of_a_suite_with_the_same_cells():
    from pathlib import Path

    from sma.benchmark import select

    suite = read_suite(Path(__file__).parents[1] / "benchmarks" / "suites" / "hard.yaml")
    pilot = select(suite, seeds=[1, 0], variants=["sma", "nosma"])
    assert len(pilot.cells()) == 2 * 5 * 2 * 2 and pilot.seeds == (0, 1) and pilot.world == "hard"
    assert {cell.id for cell in pilot.cells()} <= {cell.id for cell in suite.cells()}
    assert [method.name for method in select(suite, methods=["motiondirector"]).methods] == ["motiondirector"]
    lane = select(suite, references=["non-rigid", "camera-pan"], seeds=[3])
    assert [reference.name for reference in lane.references] == ["camera-pan", "non-rigid"]
    assert len(lane.cells()) == 2 * 2 * len(suite.variants)
    with pytest.raises(SmaError, match="the suite has no references waves"):
        select(suite, references=["waves"])
    with pytest.raises(SmaError, match="the suite has no variants nope"):
        select(suite, variants=["sma", "nope"])
    with pytest.raises(SmaError, match=r"no seeds 10 \(it has 0, 1, 2, 3, 4, 5, 6, 7, 8, 9\)"):
        select(suite, seeds=[10])


def test_parts_run_apart_merge_into_one_summary_and_a_cell_twice_is_refused(tmp_path, monkeypatch):
    import sys

    from benchmark_scripts import load_script

    from sma.benchmark import append_results

    summarise_script = load_script("summarise")
    for part, seed in (("a", 0), ("b", 1)):
        cells = [record("vmc", variant, "pan", seed, 0.5) for variant in ("sma", "nosma")]
        (tmp_path / part).mkdir()
        append_results(tmp_path / part, [{**cell, "cell": f"pan-{cell['variant']}-{seed}"} for cell in cells])
    arguments = [str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "all")]
    monkeypatch.setattr(sys, "argv", ["summarise.py", *arguments])
    summarise_script.main()
    assert [r["seed"] for r in read_results(tmp_path / "all")] == [0, 0, 1, 1]
    assert "| vmc | sma minus nosma | 2 |" in (tmp_path / "all" / "summary.md").read_text()
    arguments = [str(tmp_path / "a"), str(tmp_path / "all"), "--out", str(tmp_path / "again")]
    monkeypatch.setattr(sys, "argv", ["summarise.py", *arguments])
    with pytest.raises(SystemExit, match="cell pan-sma-0 is in both"):
        summarise_script.main()


def test_reference_paths_are_relative_to_clips_then_the_suite(model_dir, reference, tmp_path):
    """Issue 35: real-clips.yaml ran only where the repository sat beside shared/."""
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(reference, clips / "circle.mp4")
    entry = [{"path": "circle.mp4", "prompt": "a red circle", "targets": ["a blue square"]}]
    (tmp_path / "suites").mkdir()
    suite = write_suite(tmp_path / "suites", model_dir, references=entry, clips="../clips")
    assert read_suite(suite).references[0].path == clips / "circle.mp4"
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(clips, elsewhere)
    assert read_suite(suite, clips=elsewhere).references[0].path == elsewhere / "circle.mp4"
    with pytest.raises(SmaError, match=r"--clips: no folder at .*nowhere"):
        read_suite(suite, clips=tmp_path / "nowhere")
    suite = write_suite(tmp_path / "suites", model_dir, references=entry)  # no clips: the suite's own folder
    with pytest.raises(SmaError, match=r"no reference video at .*suites/circle.mp4 \(relative to --clips"):
        read_suite(suite)


def test_results_of_the_two_sided_sum_read_as_the_mean(tmp_path):
    """Issue 36: two-sided scores were sums (0..2) beside 0..1 columns; older files keep loading, halved."""
    from sma.benchmark import RESULTS_FILE
    from sma.report import read_metrics, write_metrics

    old = {"cell": "a", "robust_two_sided": 1.6, "robust_motion_fidelity": 0.9}
    (tmp_path / RESULTS_FILE).write_text(json.dumps(old) + "\n" + json.dumps({"robust_two_sided_mean": 0.7}) + "\n")
    assert read_results(tmp_path) == [
        {"cell": "a", "robust_motion_fidelity": 0.9, "robust_two_sided_mean": 0.8},
        {"robust_two_sided_mean": 0.7},
    ]
    write_metrics(tmp_path, {"outputs": [{"robust_two_sided": None, "two_sided": 1.0}], "sma_share": 0.5})
    assert read_metrics(tmp_path) == {
        "outputs": [{"robust_two_sided_mean": None, "motion_fidelity_lk_two_sided_mean": 0.5}],
        "sma_share": 0.5,
    }


def test_entries_name_their_method_and_zero_shot_cells_take_no_training_keys(tmp_path, model_dir):
    methods = {
        "vmc": {},
        "flowmotion-sma": {"method": "flowmotion", "overrides": {"flowmotion.motion_loss": "sma"}},
        "dmt": {},
    }
    suite = read_suite(write_suite(tmp_path, model_dir, methods=methods, variants=["sma"]))
    configs = {cell.method.name: cell_config(suite, cell, str(model_dir)) for cell in suite.cells()}
    assert {name: config.method for name, config in configs.items()} == {
        "vmc": "vmc",
        "flowmotion-sma": "flowmotion",
        "dmt": "dmt",
    }
    assert configs["vmc"].train.steps == 2 and configs["vmc"].train.checkpoint_every == 2
    assert configs["flowmotion-sma"].train.steps == 400 and configs["flowmotion-sma"].options.motion_loss == "sma"
    assert configs["dmt"].generate.steps == 2
    with pytest.raises(SmaError, match="unknown method 'sora' in the suite"):
        read_suite(write_suite(tmp_path, model_dir, methods={"mine": {"method": "sora"}}))


def test_a_method_runs_only_the_variants_it_names(tmp_path, model_dir):
    methods = {"vmc": {}, "dmt": {"variants": ["sma", "nosma"]}}
    suite = read_suite(write_suite(tmp_path, model_dir, methods=methods, variants=["sma", "nosma", "untuned"]))
    cells = {(cell.method.name, cell.variant.name) for cell in suite.cells()}
    assert cells == {("vmc", "sma"), ("vmc", "nosma"), ("vmc", "untuned"), ("dmt", "sma"), ("dmt", "nosma")}
    with pytest.raises(SmaError, match=r"methods\.dmt\.variants: the suite has no variant half"):
        read_suite(write_suite(tmp_path, model_dir, methods={"dmt": {"variants": ["half"]}}))


def test_versus_pairs_two_methods_on_the_same_reference_target_and_seed():
    from benchmark_scripts import load_script

    records = [
        record("flowmotion", "nosma", "zigzag", 0, 0.70, 8.0),
        record("flowmotion", "nosma", "zigzag", 1, 0.60, 9.0),
        record("vmc", "nosma", "zigzag", 0, 0.50, 10.0),
        record("vmc", "nosma", "zigzag", 1, 0.80, 12.0),
        record("vmc", "nosma", "circle", 0, 0.10, 1.0),  # flowmotion has no circle: left out
        record("vmc", "sma", "zigzag", 0, 0.00, 0.0),  # another variant: never paired
    ]
    (row,) = load_script("versus").versus(records, "flowmotion/nosma", "vmc/nosma")
    assert (row["variant"], row["n"]) == ("flowmotion/nosma minus vmc/nosma", 2)
    assert row["robust_motion_fidelity"][0] == pytest.approx((0.2 - 0.2) / 2)
    assert row["trajectory_error_px"][0] == pytest.approx((-2.0 - 3.0) / 2)


def test_the_commit_is_unknown_outside_git(tmp_path, monkeypatch):
    import sma.benchmark.runner as runner

    assert runner.sma_commit() != ""
    monkeypatch.setattr(runner, "__file__", str(tmp_path / "runner.py"))  # a folder no git checkout holds
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert runner.sma_commit() == "unknown"


def test_executor_flags_are_one_line_errors_before_any_work(tmp_path, model_dir, capsys, monkeypatch):
    import sys

    suite, out = str(write_suite(tmp_path, model_dir)), str(tmp_path / "out")
    assert main(["benchmark", suite, "--out", out, "--ray-address", "10.0.0.1:6379"]) == 2
    assert capsys.readouterr().err == "sma: error: --ray-address and --gpus-per-cell need --executor ray\n"
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    assert main(["benchmark", suite, "--out", out, "--executor", "ray"]) == 2
    assert capsys.readouterr().err == "sma: error: the Ray executor needs Ray: pip install 'sma[ray]'\n"
    with pytest.raises(SystemExit):
        main(["benchmark", suite, "--out", out, "--executor", "ray", "--cpus-per-cell", "-1"])
    assert "takes a number of 0 or more, not '-1'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_summary_says_why_a_column_is_left_out():
    """Issue 46: the motion columns vanished from the summary without a word."""
    from sma.benchmark import summary_text

    records = [record("vmc", variant, "pan", 0, None, error=1.0) for variant in ("nosma", "sma")]
    text = summary_text(records, "t")
    assert "motion fidelity (robust)" not in text.split("Columns left out")[0]
    assert "motion fidelity (robust): undefined in all 2 outputs (no moving point tracked" in text
    assert "CLIP text: not measured by these records" in text
