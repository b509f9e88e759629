"""Runs never lose work: safe overwrite, one writer per folder, honest resume, one-line errors (issue 18)."""

import json
import os
import signal
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sma.checkpoints import DamagedCheckpointWarning
from sma.cli import _one_line_warning, main
from sma.errors import SmaError
from sma.methods.vmc import VMC
from sma.recipes import load_config
from sma.run_folder import RunLock
from sma.runs import Adapter, generate, train, transfer
from sma.training import TrainingInterrupted
from sma.video import MovingObject, read_video, synthetic_video, write_video

SIZE = 16


def values(model_dir, **overrides):
    settings = {
        "model": str(model_dir),
        "prompt": "a red circle moving right",
        "targets": ["a blue square"],
        "video.frames": 4,
        "video.height": SIZE,
        "video.width": SIZE,
        "train.steps": 2,
        "train.checkpoint_every": 1,
        "generate.steps": 2,
        "generate.inversion_steps": 2,
    }
    return settings | overrides


def config(model_dir, **overrides):
    return load_config(overrides=values(model_dir, **overrides))


def command(command_name, reference, out, model_dir, *extra):
    """The command line of a run with the settings of `config` (a recipe beside the reference), then `extra` flags."""
    recipe = Path(reference).parent / "recipe.yaml"
    if not recipe.exists():
        config(model_dir).save(recipe)
    return [command_name, str(reference), "--out", str(out), "--config", str(recipe), *extra]


def one_line_error(capsys) -> str:
    """The error the command line printed: one line, after whatever progress bars came before it."""
    printed = capsys.readouterr().err
    assert "sma: error: " in printed, printed
    error = printed[printed.index("sma: error: ") :]
    assert len(error.strip().splitlines()) == 1, error
    return error


def adapter_tensors(run):
    return Adapter.load(run / "adapter").tensors


def same_tensors(first, second):
    return first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)


def failing_loss(monkeypatch, after: int):
    """VMC's loss raises on call `after` + 1: a failure in the middle of training."""
    original, calls = VMC.loss, {"count": 0}

    def loss(self, *args):
        calls["count"] += 1
        if calls["count"] > after:
            raise SmaError("injected failure")
        return original(self, *args)

    monkeypatch.setattr(VMC, "loss", loss)


def test_overwrite_keeps_the_old_run_until_the_new_one_succeeded(model_dir, reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(config(model_dir), reference, out)
    old = adapter_tensors(out)
    (out / "note.txt").write_text("from the old run")

    failing_loss(monkeypatch, after=1)  # the replacement trains one step, checkpoints it, then fails
    with pytest.raises(SmaError, match="injected failure"):
        train(config(model_dir, seed=1), reference, out, overwrite=True)
    assert same_tensors(adapter_tensors(out), old) and (out / "note.txt").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]  # no half-built replacement, no lock

    monkeypatch.undo()
    train(config(model_dir, seed=1), reference, out, overwrite=True)
    assert not (out / "note.txt").exists() and not same_tensors(adapter_tensors(out), old)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]


def test_a_failed_new_run_leaves_nothing_that_blocks_the_rerun(model_dir, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    failing_loss(monkeypatch, after=0)
    assert main(command("train", reference, out, model_dir)) == 2
    assert "injected failure" in one_line_error(capsys)
    assert not out.exists()
    monkeypatch.undo()
    assert main(command("train", reference, out, model_dir)) == 0


def test_fp16_training_on_the_cpu_is_one_line_before_the_folder_is_made(model_dir, reference, tmp_path, capsys):
    """The GPU recipes' fp16 autocast failed on the CPU in every layer (half weights, float inputs) mid-run."""
    out = tmp_path / "run"
    assert main(command("train", reference, out, model_dir, "--mixed-precision", "fp16")) == 2
    assert "needs a GPU: on the CPU train with --mixed-precision no (or bf16)" in one_line_error(capsys)
    assert not out.exists()


def test_a_second_writer_is_refused_naming_the_holder(model_dir, reference, tmp_path, capsys):
    out = tmp_path / "run"
    lock = RunLock(tmp_path / ".run.lock", out)
    lock.acquire()
    try:
        assert main(command("train", reference, out, model_dir)) == 2
    finally:
        lock.release()
    error = one_line_error(capsys)
    assert f"is being written by another run (pid {os.getpid()} on {socket.gethostname()}" in error
    assert not out.exists()


def test_the_stale_lock_of_a_dead_process_is_taken_over(model_dir, reference, tmp_path):
    (tmp_path / ".run.lock").write_text(json.dumps({"pid": 2**22 + 1, "host": "elsewhere", "since": "then"}))
    train(config(model_dir), reference, tmp_path / "run")
    assert not (tmp_path / ".run.lock").exists()


def test_resume_refuses_changed_settings_and_reference(model_dir, reference, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(command("train", reference, out, model_dir)) == 0
    stored = (out / "config.yaml").read_text()

    assert main(command("train", reference, out, model_dir, "--resume", "--frames", "3", "--sma-levels", "1")) == 2
    error = one_line_error(capsys)
    assert "--frames (4 -> 3)" in error and "--sma-levels (2 -> 1)" in error and "only --steps" in error
    assert main(command("train", reference, out, model_dir, "--resume", "--lr", "0.001", "--method", "tuneavideo")) == 2
    error = one_line_error(capsys)
    assert "--lr (0.0001 -> 0.001)" in error and "--method ('vmc' -> 'tuneavideo')" in error
    assert main(command("train", reference, out, model_dir, "--resume", "--no-sma")) == 2
    assert "--no-sma (not given in the run, given now)" in one_line_error(capsys)

    other = write_video(
        tmp_path / "other.mp4",
        synthetic_video(MovingObject("square", "blue", "linear"), num_frames=4, height=SIZE, width=SIZE).frames,
    )
    assert main(command("train", other, out, model_dir, "--resume")) == 2
    assert "the reference videos (1 stored, 1 now; their sha256, captions or order)" in one_line_error(capsys)

    assert main(command("train", reference, out, model_dir, "--resume", "--steps", "1")) == 2
    error = one_line_error(capsys)
    assert "finished training at step 2: resuming keeps those steps, so set --steps to at least 2" in error
    assert (out / "config.yaml").read_text() == stored


@pytest.mark.parametrize("share", [{}, {"sma.share": 0.3}])  # the share control's sums resume with the run
def test_resume_with_more_steps_equals_a_longer_run(model_dir, reference, tmp_path, share):
    train(config(model_dir, **share), reference, tmp_path / "short")
    longer = {"train.steps": 3, "train.checkpoint_every": 2, **share}
    train(config(model_dir, **longer), reference, tmp_path / "short", resume=True)
    train(config(model_dir, **{"train.steps": 3, **share}), reference, tmp_path / "long")
    assert same_tensors(adapter_tensors(tmp_path / "short"), adapter_tensors(tmp_path / "long"))
    assert load_config(tmp_path / "short" / "config.yaml").train.steps == 3


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(model_dir, reference, tmp_path):
    out = tmp_path / "run"
    train(config(model_dir), reference, out)
    latest = out / "checkpoints" / "step-000002" / "adapter.safetensors"
    latest.write_bytes(latest.read_bytes()[:40])
    with pytest.warns(DamagedCheckpointWarning, match="step-000002.*resuming from the older checkpoint step-000001"):
        train(config(model_dir, **{"train.steps": 3}), reference, out, resume=True)
    train(config(model_dir, **{"train.steps": 3}), reference, tmp_path / "straight")
    assert same_tensors(adapter_tensors(out), adapter_tensors(tmp_path / "straight"))


def test_every_checkpoint_damaged_is_one_line(model_dir, reference, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(command("train", reference, out, model_dir)) == 0
    for state in (out / "checkpoints").glob("*/state.json"):
        state.write_text("{")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(command("train", reference, out, model_dir, "--resume", "--steps", "3")) == 2
    assert "no older checkpoint can be read): set --overwrite" in one_line_error(capsys)


def test_the_configuration_is_checked_before_anything_loads(reference, tmp_path, capsys):
    out = tmp_path / "run"
    model = tmp_path / "no-model-here"  # loading it would fail: each error below must come first
    cases = {
        ("--lr", "nan"): "--lr must be a finite number",
        ("--lr", "-1"): "--lr must be above 0",
        ("--lr", "-1e-4"): "--lr must be above 0, got -0.0001",  # argparse took it for a flag
        ("--method", "dmt", "--steps", "3"): "dmt trains nothing, so --steps would have no effect",
        ("--method", "dmt", "--mixed-precision", "bf16"): "so --mixed-precision would have no effect",
        ("--method", "tuneavideo", "--control-video", "depth.mp4"): "recipe section 'controlvideo' configures",
        ("--frames", "3"): "--sma-levels 2 is too many for 3 frames: at most 1 (lower --sma-levels or take more",
        ("--resume", "--overwrite"): "set either --resume (continue the run) or --overwrite",
        ("--steps", "0"): "--steps must be >= 1, got 0",
        ("--steps", "1000000000000"): "--steps is 1000000000000: more than 100000 would not finish",
        ("--sampling-steps", "2000"): "--sampling-steps must be from 1 to 1000 (the training timesteps",
        ("--frames", "1"): "--frames must be >= 2: motion needs at least two frames",
    }
    for extra, message in cases.items():
        arguments = ["transfer", str(reference), "--out", str(out), "--model", str(model), "--target", "x", *extra]
        assert main(arguments) == 2, extra
        assert message in one_line_error(capsys), extra
    recipe = tmp_path / "recipe.yaml"
    for section, message in (
        ("{sampler: euler}", "recipe key generate.sampler must be one of ddim, dpmsolver++, got 'euler'"),
        ("{steps: 0}", "--sampling-steps must be from 1 to 1000"),
        ("{inversion_steps: 1001}", "--inversion-steps must be from 1 to 1000"),
        ("{noise_prior: 1.5}", "recipe key generate.noise_prior must be in [0, 1], got 1.5"),
    ):
        recipe.write_text(f"generate: {section}\n")
        assert main(["transfer", str(reference), "--out", str(out), "--config", str(recipe), "--target", "x"]) == 2
        assert message in one_line_error(capsys)
    assert not out.exists()


def test_a_one_frame_reference_says_motion_needs_two(model_dir, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (SIZE, SIZE)).save(frames / "0.png")
    assert main(command("train", frames, tmp_path / "run", model_dir)) == 2
    assert "holds a single frame: motion transfer needs a video of at least 2" in one_line_error(capsys)


def test_read_only_output_folder_is_one_line(model_dir, reference, tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):  # root writes anywhere, but not in sysfs
            parent = Path("/sys")
        assert main(command("train", reference, parent / "run", model_dir)) == 2
        assert f"cannot write in {parent}: Permission denied" in one_line_error(capsys)
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_adapter_records_the_absolute_model_and_generate_can_override_it(
    model_dir, reference, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(model_dir.parent)
    out = tmp_path / "run"
    train(config(os.path.relpath(model_dir)), reference, out)
    about = json.loads((out / "adapter" / "adapter.json").read_text())
    assert about["base_model"] == str(model_dir.resolve())
    monkeypatch.chdir(tmp_path)
    first = generate(out / "adapter", ["a blue square"], tmp_path / "videos")

    moved = tmp_path / "moved-model"
    model_dir.rename(moved)
    try:
        arguments = ["generate", "--adapter", str(out / "adapter"), "--target", "a blue square", "--out", "again"]
        assert main(arguments) == 2
        error = one_line_error(capsys)
        assert "the adapter's base model" in error and "is gone: set --model" in error
        assert main([*arguments, "--model", str(moved)]) == 0
    finally:
        moved.rename(model_dir)
    again = tmp_path / "again" / first[0].relative_to(tmp_path / "videos")
    assert (read_video(again.with_suffix(".gif")) == read_video(first[0].with_suffix(".gif"))).all()  # no codec noise


def test_generate_refuses_before_computing(model_dir, reference, tmp_path, capsys):
    out = tmp_path / "run"
    train(config(model_dir), reference, out)
    adapter = out / "adapter"
    videos = generate(adapter, ["a blue square"], tmp_path / "videos")
    arguments = ["generate", "--adapter", str(adapter), "--target", "a blue square", "--out", str(tmp_path / "videos")]
    assert main(arguments) == 2
    assert f"{videos[0]} exists; set --overwrite" in one_line_error(capsys)

    arguments.append("--overwrite")
    assert main([*arguments[:-2], "/sys/videos", "--overwrite"]) == 2  # read-only even for root
    assert "cannot create /sys/videos: " in one_line_error(capsys)
    (adapter / "adapter.json").write_text("{not json")
    assert main(arguments) == 2
    assert "adapter.json is damaged" in one_line_error(capsys)
    tensors = adapter / "adapter.safetensors"
    for damage in (lambda: tensors.write_bytes(b"\x00" * 12), tensors.unlink):
        train(config(model_dir), reference, out, overwrite=True)
        damage()
        assert main(arguments) == 2
        assert "adapter.safetensors" in one_line_error(capsys)


def test_generate_takes_a_run_folder_and_a_failure_leaves_no_empty_folder_and_adapters_are_644(
    model_dir, reference, tmp_path, capsys
):
    out = tmp_path / "run"
    mask = os.umask(0o022)
    try:
        train(config(model_dir), reference, out)
    finally:
        os.umask(mask)
    shared = [out / "adapter" / "adapter.safetensors", *(out / "checkpoints").glob("step-*/*.safetensors")]
    assert {oct(path.stat().st_mode & 0o777) for path in shared} == {"0o644"}  # safetensors alone gives 600
    assert {oct(path.stat().st_mode & 0o777) for path in (out / "checkpoints").glob("step-*")} == {"0o755"}
    arguments = ["generate", "--target", "a blue square", "--out"]
    assert main([*arguments, str(tmp_path / "videos"), "--adapter", str(out)]) == 0
    assert (tmp_path / "videos" / "videos" / "00-a-blue-square.mp4").is_file()
    assert main([*arguments, str(tmp_path / "more"), "--adapter", str(out), "--model", str(tmp_path / "gone")]) == 2
    assert "gone" in one_line_error(capsys) and not (tmp_path / "more").exists()
    assert main([*arguments, str(tmp_path / "more"), "--adapter", str(tmp_path)]) == 2
    assert "neither an adapter folder" in one_line_error(capsys) and not (tmp_path / "more").exists()


def test_16_bit_png_frames_keep_their_values(tmp_path):
    depth = (np.linspace(0, 65535, SIZE * SIZE).reshape(SIZE, SIZE)).astype(np.uint16)
    folder = tmp_path / "depth"
    folder.mkdir()
    for index in range(2):
        Image.fromarray(depth).save(folder / f"{index}.png")
    assert Image.open(folder / "0.png").mode.startswith("I")
    frames = read_video(folder)
    expected = np.round(depth / 257).astype(np.uint8)
    assert frames.shape == (2, SIZE, SIZE, 3)
    assert (frames[0, ..., 0] == expected).all() and (frames[..., 1] == frames[..., 2]).all()


def test_a_hub_model_is_pinned_to_the_cached_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from sma.runs import hub_revision

    storage = tmp_path / "models--owner--name"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text("0123abcd")
    (storage / "snapshots" / "0123abcd").mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert hub_revision(load_config(overrides={"model": "owner/name"})) == "0123abcd"
    assert hub_revision(load_config(overrides={"model": "owner/name", "revision": "v1"})) == "v1"
    assert hub_revision(load_config(overrides={"model": "owner/other"})) == ""


def test_an_interrupted_replacement_keeps_the_old_run(model_dir, reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(config(model_dir), reference, out)
    old = adapter_tensors(out)
    original = VMC.loss

    def loss_then_sigterm(self, *args):
        os.kill(os.getpid(), signal.SIGTERM)  # the loop stops after this step
        return original(self, *args)

    monkeypatch.setattr(VMC, "loss", loss_then_sigterm)
    with pytest.raises(TrainingInterrupted, match=r"stopped at step 1 of 2 \(nothing is kept: the run this one"):
        train(config(model_dir, seed=1), reference, out, overwrite=True)
    assert same_tensors(adapter_tensors(out), old)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]


def test_library_warnings_are_one_line_in_flags():
    line = _one_line_warning(DamagedCheckpointWarning("x; set `overwrite`"), DamagedCheckpointWarning, "f.py", 1)
    assert line == "sma: warning: x; set --overwrite\n"


def test_an_empty_prompt_is_said_and_each_target_is_named(model_dir, reference, tmp_path, capsys):
    arguments = [*command("transfer", reference, tmp_path / "run", model_dir), "--prompt", "", "--target", "a cat"]
    with pytest.warns(UserWarning, match="`prompt` is empty"):
        assert main(arguments) == 0
    printed = capsys.readouterr()
    assert "generating 1/1: a cat" in printed.out + printed.err
    assert "motion fidelity" in printed.out and "(robust on " in printed.out and " output tracks)" in printed.out


def test_an_interrupt_after_training_keeps_the_adapter_and_resume_generates_only(
    model_dir, reference, tmp_path, monkeypatch
):
    """Issue 35: a run shorter than the checkpoint interval, stopped while it generates, kept nothing; resuming
    a finished run trained it again (and could cut its log or replace its adapter by a shorter one)."""
    import sma.runs

    out, settings = tmp_path / "run", {"train.checkpoint_every": 100}

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sma.runs, "write_videos", interrupted)
    with pytest.raises(KeyboardInterrupt):
        transfer(config(model_dir, **settings), reference, out)
    monkeypatch.undo()
    adapter, log = (out / "adapter" / "adapter.safetensors").read_bytes(), (out / "losses.jsonl").read_text()
    assert len(log.splitlines()) == 2

    more_targets = {**settings, "targets": ["a blue square", "a green star"]}
    transfer(config(model_dir, **more_targets), reference, out, resume=True)
    assert (out / "adapter" / "adapter.safetensors").read_bytes() == adapter  # not trained again
    assert (out / "losses.jsonl").read_text() == log
    assert len(list((out / "videos").glob("*.mp4"))) == 2
    assert load_config(out / "config.yaml").targets == ["a blue square", "a green star"]

    with pytest.raises(SmaError, match="finished training at step 2: resuming keeps those steps"):
        transfer(config(model_dir, **{**settings, "train.steps": 1}), reference, out, resume=True)
    assert (out / "adapter" / "adapter.safetensors").read_bytes() == adapter

    transfer(config(model_dir, **{**settings, "train.steps": 3}), reference, out, resume=True, overwrite=False)
    extended = (out / "losses.jsonl").read_text()
    assert extended.startswith(log) and len(extended.splitlines()) == 3  # appended, never cut


def test_sma_share_is_printed_and_warned_above_ninety_percent(model_dir, reference, tmp_path, capsys):
    """Issue 35: SMA's share of the loss was only in metrics.json, and its weights only in a recipe."""
    from sma.cli.flags import for_command_line
    from sma.runs import SmaShareWarning

    heavy = ["--sma-global-weight", "40", "--sma-local-weight", "20"]  # the recipe's weights x100: far above 90%
    with pytest.warns(SmaShareWarning) as warned:
        assert main(command("train", reference, tmp_path / "authors", model_dir, *heavy)) == 0
    share = json.loads((tmp_path / "authors" / "metrics.json").read_text())["sma_share"]
    printed = capsys.readouterr()
    assert share > 0.9 and f"SMA's share of the training loss: {share:.0%}" in printed.err + printed.out
    (message,) = [for_command_line(str(warning.message)) for warning in warned if warning.category is SmaShareWarning]
    assert f"SMA was {share:.0%} of the training loss" in message
    assert "scale --sma-global-weight and --sma-local-weight down" in message

    weights = ["--sma-global-weight", "1e-6", "--sma-local-weight", "2e-6"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmaShareWarning)
        assert main(command("train", reference, tmp_path / "light", model_dir, *weights)) == 0
    assert load_config(tmp_path / "authors" / "config.yaml").sma.global_weight == 40
    stored = load_config(tmp_path / "light" / "config.yaml").sma
    assert (stored.global_weight, stored.local_weight) == (1e-6, 2e-6)
    assert json.loads((tmp_path / "light" / "metrics.json").read_text())["sma_share"] < 0.5


def test_words_outside_the_embedded_vocabulary_are_named_once(monkeypatch):
    """Issue 35: the embedded model split an unknown word into letters without a word."""
    from transformers import CLIPTokenizer

    from sma.backbones import latent_video
    from sma.embedded import embedded_model

    monkeypatch.setattr(latent_video, "WARNED_WORDS", set())
    tokenizer = CLIPTokenizer.from_pretrained(embedded_model(), subfolder="tokenizer")  # as the model loads it
    with pytest.warns(latent_video.UnknownWordsWarning) as warned:
        latent_video.warn_unknown_words(tokenizer, ["a purple dragon moving right", "a purple circle"])
    (message,) = [str(warning.message) for warning in warned]
    assert message.startswith("dragon: not in this model's vocabulary of 647 tokens (")  # purple: its merges split
    assert "tokenizer/vocab.json" in message  # it, but the model learnt it so (issue 43.5)
    hard = CLIPTokenizer.from_pretrained(embedded_model("hard"), subfolder="tokenizer")
    assert len(hard.tokenize("square")) > 1  # what the hard model was trained on: read in pieces
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        latent_video.warn_unknown_words(tokenizer, ["a purple dragon", "a red circle moving right"])  # once; known
        latent_video.warn_unknown_words(hard, ["a blue square on a checkered gray and white background"])  # the demo's
        monkeypatch.setattr(latent_video, "CLOSED_VOCABULARY", len(tokenizer))  # an open vocabulary splits words
        latent_video.warn_unknown_words(tokenizer, ["a yellow dragon"])


def test_words_the_tokenizer_config_names_as_learnt_in_pieces_are_not_warned(monkeypatch, tmp_path):
    """Issue 46.3: a shipped tokenizer pruned of the words its merges never build (square</w>) names in
    tokenizer_config.json those the model learnt in pieces, and they are not unknown words."""
    from transformers import CLIPTokenizer

    from sma.backbones import latent_video
    from sma.embedded.architecture import write_clip_tokenizer

    monkeypatch.setattr(latent_video, "WARNED_WORDS", set())
    write_clip_tokenizer(tmp_path, words=["red"])
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config | {latent_video.WORDS_IN_PIECES: ["square"]}))
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        latent_video.warn_unknown_words(tokenizer, ["a red square"])
    with pytest.warns(latent_video.UnknownWordsWarning, match="^circle: not in this model's vocabulary"):
        latent_video.warn_unknown_words(tokenizer, ["a red circle"])


def test_resume_without_a_run_says_it_starts_one(model_dir, reference, tmp_path, capsys):
    assert main(command("train", reference, tmp_path / "new", model_dir, "--resume")) == 0
    printed = capsys.readouterr()
    assert "new holds no run to resume: starting a new one" in printed.out + printed.err


def test_generate_takes_the_run_lock_and_resume_keeps_what_an_interrupt_left(
    model_dir, reference, tmp_path, monkeypatch, capsys
):
    """Issue 46: two generates into one folder both ran, and Ctrl-C while generating left no way on but
    --overwrite, which made every video again."""
    import sma.runs

    out, videos = tmp_path / "run", tmp_path / "videos"
    train(config(model_dir), reference, out)
    arguments = ["generate", "--adapter", str(out), "--target", "a blue square", "--target", "a green star"]
    arguments += ["--out", str(videos)]
    lock = RunLock(tmp_path / ".videos.lock", videos)  # a transfer, or another generate, writing there
    lock.acquire()
    try:
        assert main(arguments) == 2
    finally:
        lock.release()
    assert f"is being written by another run (pid {os.getpid()}" in one_line_error(capsys) and not videos.exists()

    write_output = sma.runs.write_output

    def interrupted_at_the_second(path, video, overwrite):
        if path.name.startswith("01-"):
            raise KeyboardInterrupt
        return write_output(path, video, overwrite)

    monkeypatch.setattr(sma.runs, "write_output", interrupted_at_the_second)
    assert main(arguments) == 130
    assert "run the same command with --resume" in capsys.readouterr().err
    monkeypatch.undo()
    first = videos / "videos" / "00-a-blue-square.mp4"
    made = first.stat().st_ino
    assert main(arguments) == 2 and "exists; set --overwrite" in one_line_error(capsys)
    assert main([*arguments, "--seed", "7", "--resume"]) == 2
    assert "were made with another seed: set --overwrite" in one_line_error(capsys)
    assert main([*arguments, "--resume"]) == 0
    assert first.stat().st_ino == made and (videos / "videos" / "01-a-green-star.gif").is_file()


def test_a_prompt_cut_by_the_text_encoder_and_unknown_symbols_are_said_once(monkeypatch):
    """Issue 46: a 102-token target lost its end silently, and emoji got no warning."""
    from transformers import CLIPTokenizer

    from sma.backbones import latent_video
    from sma.embedded import embedded_model

    monkeypatch.setattr(latent_video, "WARNED_WORDS", set())
    tokenizer = CLIPTokenizer.from_pretrained(embedded_model(), subfolder="tokenizer")  # reads 24 tokens
    long = " and ".join(["a red circle moving right"] * 12) + " on white"
    cut = "is 75 tokens and the text encoder reads 24: everything after 'red circle moving' is cut"
    with pytest.warns(latent_video.LongPromptWarning, match=cut):
        latent_video.warn_cut_prompts(tokenizer, [long, long], tokenizer.model_max_length)
    with pytest.warns(latent_video.UnknownWordsWarning, match="^🦊: not in this model's vocabulary"):
        latent_video.warn_unknown_words(tokenizer, ["a red 🦊 moving right"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        latent_video.warn_cut_prompts(tokenizer, [long], tokenizer.model_max_length)  # once
        latent_video.warn_unknown_words(tokenizer, ["a red 🦊, moving right"])
