"""Show-1's cascade after the keyframes: stage models in their Hub layouts, frame counts and sizes, errors, CLI."""

import json
from pathlib import Path

import pytest
import torch

from sma.backbones.show1_cascade import PixelStage, interpolate, run_cascade, windows
from sma.backbones.show1_options import Show1Options, check_sources
from sma.backbones.show1_unet import Show1UNet3DConditionModel
from sma.cli import main
from sma.errors import SmaError
from sma.recipes import load_config
from sma.video import read_video
from tiny_models import build_text_to_video
from tiny_show1 import (
    build_if_super_resolution,
    build_show1_base,
    build_show1_interpolation,
    build_show1_sr1,
)

DATA = Path(__file__).parent / "data"
KEYFRAMES = (1, 3, 8, 4, 4)  # 8 keyframes, as the base stage makes them; 4x4 keeps the tiny stages fast


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("show-1-stages")
    return Show1Options(
        stages="sr2",
        interpolation=str(build_show1_interpolation(root / "interpolation")),
        image_sr=str(build_if_super_resolution(root / "if-ii")),
        sr1=str(build_show1_sr1(root / "sr1")),
        sr2=str(build_text_to_video(root / "sr2")),
        interp_steps=1,
        image_sr_steps=1,
        sr1_steps=1,
        sr2_steps=2,  # strength 0.8 of 2 steps: 1 step runs
        sr2_height=16,
        sr2_width=24,
    )


def test_stage_unets_at_the_real_size_differ_from_the_base_only_where_their_inputs_do():
    """Interpolation and sr1 are the authors' class with more input channels (and for sr1 a noise-level
    embedding, named as the authors' `class_embedding`); their Hub configs are not recorded here, so the
    base's real config stands for the rest of the network."""
    recorded = json.loads((DATA / "show1_base_unet_state.json").read_text())
    config = {key: value for key, value in recorded["config"].items() if not key.startswith("_")}
    base = recorded["parameters"]
    with torch.device("meta"):
        interpolation = Show1UNet3DConditionModel(**config | {"in_channels": 7}).state_dict()
        sr1 = Show1UNet3DConditionModel(**config | {"in_channels": 6, "class_embed_type": "timestep"}).state_dict()
    assert {name: list(t.shape) for name, t in interpolation.items()} == base | {"conv_in.weight": [320, 7, 3, 3]}
    noise_level = {"class_embedding.linear_1.weight": [1280, 320], "class_embedding.linear_1.bias": [1280]}
    noise_level |= {"class_embedding.linear_2.weight": [1280, 1280], "class_embedding.linear_2.bias": [1280]}
    assert {name: list(t.shape) for name, t in sr1.items()} == base | {"conv_in.weight": [320, 6, 3, 3]} | noise_level


def test_each_stage_makes_the_frames_and_sizes_of_the_cascade(stages):
    generator = torch.Generator().manual_seed(0)
    keyframes = torch.rand(KEYFRAMES, generator=generator) * 2 - 1
    text, negative = torch.randn(1, 77, 48, generator=generator), torch.randn(1, 77, 48, generator=generator)
    results = dict(run_cascade([keyframes], ["a cat"], [text], negative, stages, "cpu", torch.float32, seed=0))
    assert list(results) == ["interp", "sr1", "sr2"]
    assert results["interp"][0].shape == (1, 3, 29, 4, 4)  # 3 new frames between each pair of keyframes
    assert results["sr1"][0].shape == (1, 3, 29, 16, 16)  # 4x in pixel space
    assert results["sr2"][0].shape == (1, 3, 29, 16, 24)  # resized to sr2's size, refined in latent space
    for (video,) in results.values():
        assert torch.isfinite(video).all() and video.abs().max() <= 1 and video.std() > 0.05


def test_interpolation_fills_each_pair_of_keyframes_from_that_pair_alone(stages):
    """Changing the first keyframe changes only the frames made from the first pair: frames 0-3 (frame 4 comes
    from the second pair, which regenerates it)."""
    stage = PixelStage.load("show1.interpolation", stages.interpolation, Show1UNet3DConditionModel, 7, False)
    generator = torch.Generator().manual_seed(1)
    keyframes = torch.rand(KEYFRAMES, generator=generator) * 2 - 1
    text, negative = torch.randn(1, 77, 48, generator=generator), torch.randn(1, 77, 48, generator=generator)
    changed = keyframes.clone()
    changed[:, :, 0] = -changed[:, :, 0]
    video, other = (interpolate(stage, frames, text, negative, 1, seed=3) for frames in (keyframes, changed))
    differs = [not torch.equal(video[:, :, index], other[:, :, index]) for index in range(29)]
    assert differs == [True] * 4 + [False] * 25


def test_sr1_windows_cover_every_frame_and_start_on_a_frame_already_made():
    assert windows(29) == [0, 7, 14, 21]  # the authors' 8-frame windows, stride 7, for 29 frames
    assert windows(8) == windows(5) == [0]
    assert windows(10) == [0, 2]  # where the stride misses the last frame, a last window ends on it


def test_a_stage_model_that_is_missing_or_of_another_stage_is_a_one_line_error(stages, tmp_path, monkeypatch):
    with pytest.raises(SmaError, match=r"^`show1.sr1`: no model folder at '/nowhere/sr1'") as error:
        check_sources(
            Show1Options(stages="sr1", interpolation=stages.interpolation, image_sr=stages.image_sr, sr1="/nowhere/sr1")
        )
    assert "\n" not in str(error.value)
    check_sources(Show1Options(stages="interp", interpolation=stages.interpolation, sr1="/nowhere/sr1"))  # sr1 unused
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SmaError, match=r"^`show1.sr2`: 'showlab/show-1-sr2' is not in the local Hugging Face cache"):
        check_sources(stages.__class__(**{**vars(stages), "sr2": "showlab/show-1-sr2"}))
    with pytest.raises(SmaError, match=r"^`show1.interpolation`: .*sr1 has a UNet of 6 input channels.*needs 7"):
        PixelStage.load("show1.interpolation", stages.sr1, Show1UNet3DConditionModel, 7, False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SmaError, match=r"^`show1.interpolation`: .*empty has no unet/ folder"):
        PixelStage.load("show1.interpolation", str(tmp_path / "empty"), Show1UNet3DConditionModel, 7, False)


def test_the_show1_section_reads_and_writes_like_a_shared_one(tmp_path):
    """Show-1 owns `show1` (a section of `TransferConfig.sections`): a recipe and dotted overrides set it, config.yaml
    keeps it after `generate`, and its own checks refuse what cannot run."""
    config = load_config("vmc-show1", overrides={"show1.stages": "sr1", "show1.sr1_steps": 5})
    section = config.sections["show1"]
    assert isinstance(section, Show1Options)
    assert (section.stages, section.sr1_steps, section.sr2_steps) == ("sr1", 5, 50)
    assert config.later_stages() == ["interp", "sr1"]
    values = config.to_dict()
    keys = list(values)
    assert keys[keys.index("generate") + 1] == "show1" and values["show1"]["sr1_steps"] == 5
    config.save(tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml").to_dict() == values
    assert load_config("vmc-show1").later_stages() == []
    with pytest.raises(SmaError, match=r"^`show1.sr2_steps` must be >= 1, got 0$"):
        load_config(overrides={"show1.sr2_steps": 0})
    with pytest.raises(SmaError, match=r"^`show1.stages` must be one of base, interp, sr1, sr2, got 'sr3'$"):
        load_config(overrides={"show1.stages": "sr3"})
    with pytest.raises(SmaError, match=r"^unknown recipe key show1.steps: valid keys here are stages, interpolation"):
        load_config(overrides={"show1.steps": 3})


def test_the_cascade_needs_a_show1_model(model_dir, reference, tmp_path, capsys):
    """A ZeroScope model with `--stages interp` fails before training."""
    arguments = [
        "train",
        str(reference),
        "--out",
        str(tmp_path / "run"),
        "--model",
        str(model_dir),
        "--stages",
        "interp",
    ]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert "--stages interp takes Show-1's keyframes further, but" in error and "is not Show-1's base stage" in error
    assert not (tmp_path / "run").exists()


def test_cli_generates_up_to_the_stage_asked_and_no_further(stages, reference, tmp_path, capsys):
    base = build_show1_base(tmp_path / "base", words=("red", "circle"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        json.dumps(
            {
                "method": "vmc",
                "prompt": "a red circle",
                "video": {"frames": 8, "height": 8, "width": 8},
                "train": {"steps": 1, "checkpoint_every": 1},
                "generate": {"steps": 1, "inversion_steps": 1, "sampler": "dpmsolver++"},
                "show1": {"interpolation": stages.interpolation, "interp_steps": 1},
            }
        )
    )
    run = tmp_path / "run"
    assert main(["train", str(reference), "--out", str(run), "--config", str(recipe), "--model", str(base)]) == 0
    out = tmp_path / "out"
    arguments = ["generate", "--adapter", str(run / "adapter"), "--target", "a circle", "--out", str(out)]
    assert main([*arguments, "--stages", "interp"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(out / "videos" / "00-a-circle.interp.mp4")
    assert sorted(path.name for path in (out / "videos").glob("*.mp4")) == ["00-a-circle.interp.mp4", "00-a-circle.mp4"]
    assert read_video(out / "videos" / "00-a-circle.mp4").shape == (8, 8, 8, 3)
    assert read_video(out / "videos" / "00-a-circle.interp.mp4").shape == (29, 8, 8, 3)
    image_sr = f"image_sr={stages.image_sr}"
    assert (
        main([*arguments, "--stages", "sr1", "--stage-model", image_sr, "--stage-model", "sr1=/nowhere", "--overwrite"])
        == 2
    )
    assert capsys.readouterr().err == (
        "sma: error: recipe key show1.sr1: no model folder at '/nowhere' (and it is not a Hub id of the form "
        "owner/name): pass a model folder in diffusers layout or a Hub id\n"
    )
