"""Text-to-video motion transfer on a tiny model in the real ZeroScope layout."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from diffusers import AutoencoderKL, UNet3DConditionModel
from safetensors.torch import load_file
from transformers import CLIPTextModel

from sma.backbones.hub import ModelNotFoundError
from sma.backbones.text_to_video import TextToVideoModel
from sma.cli import main
from sma.errors import SmaError
from sma.methods import build_method
from sma.methods.vmc import VMC
from sma.recipes import load_config
from sma.runs import Adapter, generate, make_accelerator, train
from sma.training import TrainingDiverged, TrainingInterrupted
from sma.training import train as train_loop
from sma.video import read_video

SIZE = 32


def tiny_config(model_dir, **overrides):
    values = {
        "model": str(model_dir),
        "prompt": "a red circle moving right",
        "targets": ["a blue square"],
        "video.frames": 8,
        "video.height": SIZE,
        "video.width": SIZE,
        "train.steps": 4,
        "train.checkpoint_every": 2,
        "generate.steps": 3,
        "generate.inversion_steps": 3,
    }
    values.update(overrides)
    if values.get("method") == "motiondirector":
        values.setdefault("motiondirector.lora_rank", 4)
    return load_config(overrides=values)


def test_loads_real_classes_through_from_pretrained(model_dir):
    model = TextToVideoModel.from_pretrained(str(model_dir))
    assert isinstance(model.unet, UNet3DConditionModel)
    assert isinstance(model.vae, AutoencoderKL)
    assert isinstance(model.text_encoder, CLIPTextModel)
    assert model.vae_scale_factor == 2 and model.size_multiple == 4
    latents = model.encode_video(torch.zeros(1, 3, 8, SIZE, SIZE))
    assert latents.shape == model.latent_shape(8, SIZE, SIZE) == (1, 4, 8, 16, 16)
    assert model.encode_prompts(["a red circle"]).shape == (1, 16, 32)
    projections = model.temporal_attention_projections()
    assert projections and all("temp_attentions" in name for name in projections)
    with model.capture_features(["up_blocks.1"]) as features:
        model.predict(latents, torch.tensor([10]), model.encode_prompts(["x"]))
    assert features["up_blocks.1"].shape[0] == 8  # frames are folded into the batch inside the UNet


def test_missing_model_errors(tmp_path, model_dir):
    with pytest.raises(ModelNotFoundError, match="no model folder at"):
        TextToVideoModel.from_pretrained(str(tmp_path / "nothing" / "here"))
    (tmp_path / "half").mkdir()
    with pytest.raises(ModelNotFoundError, match="has no unet/ folder"):
        TextToVideoModel.from_pretrained(str(tmp_path / "half"))


def test_size_error_names_a_size_that_works(model_dir):
    model = TextToVideoModel.from_pretrained(str(model_dir))
    with pytest.raises(SmaError, match=r"multiples of 4 \(try 32"):
        model.check_size(30, 32)


def parameters(module):
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


@pytest.mark.parametrize("method_name", ["vmc", "motiondirector"])
def test_only_the_intended_parameters_change(model_dir, method_name, tmp_path):
    config = tiny_config(model_dir, method=method_name, **{"train.learning_rate": 1e-2})
    method = build_method(config)
    model = method.model
    before = parameters(model.unet)
    latents = model.encode_video(torch.rand(1, 3, 8, SIZE, SIZE) * 2 - 1)
    train_loop(
        make_accelerator(config), method, latents, model.encode_prompts([config.prompt]), config.train, 0, tmp_path
    )
    after = parameters(model.unet)
    trained = set(method.adapter_state())
    if method_name == "vmc":
        projections = ("to_q", "to_k", "to_v")
        assert trained == {name for name in before if "temp_attentions" in name and name.split(".")[-2] in projections}
        for name in before:
            assert torch.equal(before[name], after[name]) == (name not in trained), name
    else:
        assert trained and all("lora_" in name for name in trained)
        base = {name.replace(".base_layer", ""): tensor for name, tensor in after.items() if "lora_" not in name}
        assert base.keys() == before.keys()
        assert all(torch.equal(before[name], base[name]) for name in before)
        lora_b = [tensor for name, tensor in after.items() if "lora_B" in name]
        assert any(tensor.abs().sum() > 0 for tensor in lora_b)  # LoRA B starts at zero and has moved


@pytest.mark.parametrize("method_name", ["vmc", "motiondirector"])
@pytest.mark.parametrize("use_sma", [True, False])
def test_transfer_command_end_to_end(model_dir, reference, tmp_path, method_name, use_sma):
    out = tmp_path / "run"
    arguments = ["transfer", str(reference), "--method", method_name, "--model", str(model_dir), "--out", str(out)]
    arguments += ["--prompt", "a red circle", "--target", "a blue square", "--target", "a green star"]
    arguments += ["--frames", "8", "--height", str(SIZE), "--width", str(SIZE), "--steps", "2", "--seed", "3"]
    arguments += [] if use_sma else ["--no-sma"]
    config = tmp_path / "recipe.yaml"
    own = "motiondirector: {lora_rank: 4}\n" if method_name == "motiondirector" else ""
    config.write_text(f"train: {{checkpoint_every: 1}}\ngenerate: {{steps: 2, inversion_steps: 2}}\n{own}")
    assert main([*arguments, "--config", str(config)]) == 0
    for name in ("config.yaml", "reference.mp4", "comparison.mp4", "loss_curves.png", "losses.jsonl"):
        assert (out / name).is_file(), name
    videos = sorted((out / "videos").iterdir())
    assert [path.name for path in videos] == [
        "00-a-blue-square.gif",
        "00-a-blue-square.mp4",
        "01-a-green-star.gif",
        "01-a-green-star.mp4",
    ]
    assert read_video(videos[1]).shape == (8, SIZE, SIZE, 3)
    metrics = json.loads((out / "metrics.json").read_text())
    assert [entry["target"] for entry in metrics["outputs"]] == ["a blue square", "a green star"]
    # a 2-step tiny model may write a video with no moving track, whose score is undefined (null), not out of range:
    # seen in two full runs of the suite (session 10), never in this test alone; cause not found (x264's run-to-run
    # differences, seen before in this suite, are the suspect)
    for entry in metrics["outputs"]:
        assert entry["motion_fidelity_lk"] is None or -1 <= entry["motion_fidelity_lk"] <= 1
        assert (entry["motion_fidelity_lk"] is None) == (entry["lk_generated_tracks"] == 0)
    losses = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [record["step"] for record in losses] == [0, 1]
    assert ("sma" in losses[0]) == use_sma
    if use_sma:  # SMA's share of the loss, summed over the steps: VMC's own loss is near 0, so SMA is most of it
        share = sum(record["sma"] for record in losses) / sum(record["loss"] for record in losses)
        assert metrics["sma_share"] == pytest.approx(share, rel=1e-3)
    else:
        assert metrics["sma_share"] is None
    about = json.loads((out / "adapter" / "adapter.json").read_text())
    assert about["method"] == method_name and about["sma"] == use_sma and about["base_model"] == str(model_dir)
    tensors = load_file(out / "adapter" / "adapter.safetensors")
    if method_name == "vmc":
        assert all("temp_attentions" in name and name.split(".")[-2] in ("to_q", "to_k", "to_v") for name in tensors)
    else:
        assert all(".lora_A." in name or ".lora_B." in name for name in tensors)  # peft naming
        assert any("temp_attentions" in name for name in tensors) and any(".attentions." in name for name in tensors)

    # the adapter generates again without training, reproducibly from the seed
    again = generate(out / "adapter", ["a blue square"], tmp_path / "again", seed=3)
    assert (read_video(again[0].with_suffix(".gif")) == read_video(videos[0])).all()


@pytest.mark.parametrize("flag", [[], ["--overwrite"], ["--resume"]])
def test_a_folder_that_is_not_a_run_is_never_touched(model_dir, reference, tmp_path, capsys, flag):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code = main(["transfer", str(reference), "--model", str(model_dir), "--out", str(out), "--target", "x", *flag])
    assert code == 2
    assert "holds no run (config.yaml): choose another output folder" in capsys.readouterr().err
    assert [path.name for path in out.iterdir()] == ["precious.txt"]


def test_recipe_errors(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train: {stpes: 10}\n")
    reference = tmp_path / "ref.mp4"
    reference.touch()  # there: a missing reference is said first, before the recipe is read
    assert main(["train", str(reference), "--out", str(tmp_path / "run"), "--config", str(recipe)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("sma: error: unknown recipe key train.stpes") and "steps" in error
    assert len(error.splitlines()) == 1
    recipe.write_text("train: {learning_rate: 1e-4}\n")
    with pytest.raises(SmaError, match="must be a number"):
        load_config(recipe)
    with pytest.raises(SmaError, match="too many for 4 frames: at most 2"):
        load_config(overrides={"video.frames": 4, "sma.levels": 4})


def trained_adapter(out):
    return Adapter.load(out / "adapter").tensors


def test_interrupted_run_resumes_to_the_same_weights(model_dir, reference, tmp_path, monkeypatch):
    config = tiny_config(model_dir, **{"train.steps": 5, "train.checkpoint_every": 10})
    train(config, reference, tmp_path / "straight")

    original_loss = VMC.loss
    calls = {"count": 0}

    def loss_then_sigterm(self, *args):
        calls["count"] += 1
        if calls["count"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-step; the loop stops after it
        return original_loss(self, *args)

    monkeypatch.setattr(VMC, "loss", loss_then_sigterm)
    with pytest.raises(TrainingInterrupted, match="stopped at step 3 of 5"):
        train(config, reference, tmp_path / "interrupted")
    assert (tmp_path / "interrupted" / "checkpoints" / "step-000003" / "state.json").is_file()
    monkeypatch.setattr(VMC, "loss", original_loss)
    train(config, reference, tmp_path / "interrupted", resume=True)

    straight, resumed = trained_adapter(tmp_path / "straight"), trained_adapter(tmp_path / "interrupted")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    steps = [json.loads(line)["step"] for line in (tmp_path / "interrupted" / "losses.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3, 4]


def test_nan_loss_stops_and_keeps_the_last_checkpoint(model_dir, reference, tmp_path, monkeypatch):
    config = tiny_config(model_dir, **{"train.steps": 6, "train.checkpoint_every": 2})
    original_loss = VMC.loss
    calls = {"count": 0}

    def loss_turning_nan(self, *args):
        calls["count"] += 1
        terms = original_loss(self, *args)
        if calls["count"] == 4:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(VMC, "loss", loss_turning_nan)
    with pytest.raises(TrainingDiverged, match=r"became nan at step 4 \(the last good checkpoint is step 2") as raised:
        train(config, reference, tmp_path / "run")
    assert str(raised.value).endswith(": lower `train.learning_rate`")  # in float32 already: no precision advice
    checkpoints = sorted(path.name for path in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step-000002"]


def test_the_advice_after_a_nan_names_only_another_precision():
    from sma.training import divergence_advice

    assert divergence_advice("fp16").endswith("set `train.mixed_precision` to bf16 or no")
    assert divergence_advice("bf16").endswith("set `train.mixed_precision` to no")


def test_two_process_data_parallel_training(model_dir, reference, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "sma", "train"]
    command += [str(reference), "--model", str(model_dir), "--out", str(out), "--method", "motiondirector"]
    command += ["--frames", "8", "--height", str(SIZE), "--width", str(SIZE), "--steps", "2"]
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("adapter in") == 1  # the main process reports, once
    assert len((out / "losses.jsonl").read_text().splitlines()) == 2
    assert load_file(out / "adapter" / "adapter.safetensors")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_generation_in_half_precision(model_dir, reference, tmp_path, precision):
    run = train(tiny_config(model_dir, **{"train.steps": 1}), reference, tmp_path / "run")
    full = generate(run / "adapter", ["a blue square"], tmp_path / "fp32")
    half = generate(run / "adapter", ["a blue square"], tmp_path / precision, precision=precision)
    difference = read_video(half[0]).astype(float) - read_video(full[0])
    assert 0 < abs(difference).mean() < 20  # the same video up to rounding of the weights


@pytest.mark.parametrize("option", [{"train.gradient_checkpointing": True}, {"train.mixed_precision": "bf16"}])
def test_memory_and_precision_options_train_the_same_model(model_dir, reference, tmp_path, option):
    plain = train(tiny_config(model_dir, **{"train.steps": 2}), reference, tmp_path / "plain")
    varied = train(tiny_config(model_dir, **{"train.steps": 2}, **option), reference, tmp_path / "varied")
    first, second = trained_adapter(plain), trained_adapter(varied)
    exact = "train.gradient_checkpointing" in option
    for name in first:
        if exact:
            torch.testing.assert_close(first[name], second[name], rtol=1e-5, atol=1e-6)
        else:  # bf16 autocast: the same direction of travel, not the same bits
            assert not torch.equal(first[name], second[name]) or first[name].abs().sum() == 0


@pytest.mark.parametrize("method_name", ["vmc", "motiondirector"])
def test_the_reference_is_inverted_once_while_nothing_it_depends_on_changes(model_dir, method_name, monkeypatch):
    method = build_method(tiny_config(model_dir, method=method_name))
    method.prepare()
    calls = []
    original = method.invert
    monkeypatch.setattr(method, "invert", lambda *a, **k: calls.append(1) or original(*a, **k))
    reference = torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    first = method.generate(reference, "a blue square", seed=1)
    method.generate(reference, "a green star", seed=2)
    assert len(calls) == 1
    assert torch.equal(first, method.generate(reference, "a blue square", seed=1))
    assert method.phases.summary()["invert"]["steps"] == 3  # counted once
    with torch.no_grad():  # as an optimizer step changes the trained weights
        for parameter in method.trainable.values():
            parameter.add_(0.1)
    changed = method.generate(reference, "a blue square", seed=1)
    method.generate(reference.clone(), "a blue square", seed=1)  # another reference tensor
    assert len(calls) == 3 and not torch.equal(first, changed)
