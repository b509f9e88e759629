"""Several references for one motion: lists of videos, folders of captioned videos, per-step draws, honest resume."""

import json

import numpy as np
import pytest
import torch

from sma.cli import main
from sma.errors import SmaError
from sma.methods.vmc import VMC
from sma.recipes import load_config
from sma.references import captioned, resolve
from sma.runs import Adapter, resolve_references, train
from sma.training import reference_draw
from sma.video import MovingObject, read_video, synthetic_video, write_video

SIZE = 16


def settings(model_dir, **overrides):
    values = {
        "model": str(model_dir),
        "prompt": "a shape moving",
        "targets": ["a blue square"],
        "video.frames": 4,
        "video.height": SIZE,
        "video.width": SIZE,
        "train.steps": 4,
        "train.checkpoint_every": 2,
        "generate.steps": 2,
        "generate.inversion_steps": 2,
    }
    return values | overrides


def clip(path, shape="circle", motion="linear", height=SIZE, width=SIZE, frames=4):
    video = synthetic_video(MovingObject(shape, "red", motion), num_frames=frames, height=height, width=width)
    return write_video(path, video.frames)


@pytest.fixture
def dataset(tmp_path):
    """A folder in the LoRA trainers' layout: a captioned mp4, and a gif of another size with no caption."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    clip(folder / "a-circle.mp4")
    (folder / "a-circle.txt").write_text("a red circle sliding right\n")
    clip(folder / "b-star.gif", shape="star", motion="zigzag", height=24, width=20)
    return folder


def one_line_error(capsys) -> str:
    printed = capsys.readouterr().err
    error = printed[printed.index("sma: error: ") :]
    assert len(error.strip().splitlines()) == 1, error
    return error


def test_draws_are_a_seeded_permutation_per_epoch():
    for count in (2, 3, 5):
        draws = [reference_draw(7, draw, count) for draw in range(6 * count)]
        for epoch in range(6):  # every reference once per epoch: none is starved, as in the official loader
            assert sorted(draws[epoch * count : (epoch + 1) * count]) == list(range(count))
        assert draws == [reference_draw(7, draw, count) for draw in range(6 * count)]  # the seed reproduces it
        assert draws != [reference_draw(8, draw, count) for draw in range(6 * count)]  # and another seed differs
    assert {reference_draw(seed, 0, 2) for seed in range(20)} == {0, 1}  # the first draw is not always 0
    assert [reference_draw(3, draw, 1) for draw in range(4)] == [0, 0, 0, 0]


def test_a_folder_of_captioned_videos_resolves_in_name_order(dataset, tmp_path):
    frames = tmp_path / "frames"  # a folder of image frames stays one video, as before
    write_video(frames, synthetic_video(MovingObject("circle", "red", "linear"), num_frames=4).frames)
    extra = clip(tmp_path / "extra.mp4", shape="square")
    references = captioned(resolve([str(dataset), str(frames), {"path": str(extra), "prompt": "a square"}]), "fallback")
    assert [ref.path.name for ref in references] == ["a-circle.mp4", "b-star.gif", "frames", "extra.mp4"]
    assert [ref.prompt for ref in references] == ["a red circle sliding right", "fallback", "fallback", "a square"]
    assert len({ref.sha256 for ref in references}) == 4
    single = captioned(resolve([str(extra)]), "")  # one video and no prompt: a warning later, as before
    assert single[0].prompt == "" and not single[0].from_dataset


def test_dataset_mistakes_are_one_line_errors(dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SmaError, match="empty is an empty folder: put the reference videos in it"):
        resolve([str(empty)])
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.md").write_text("x")
    with pytest.raises(SmaError, match=r"notes holds no videos \(.mp4, .mov"):
        resolve([str(notes)])
    (dataset / "c-orphan.txt").write_text("a caption")
    with pytest.raises(SmaError, match=r"c-orphan\.txt is a caption with no video of its name beside it"):
        resolve([str(dataset)])
    (dataset / "c-orphan.txt").unlink()
    clip(dataset / "a-circle.gif")
    with pytest.raises(SmaError, match=r"holds a-circle\.gif and a-circle\.mp4: one video per name"):
        resolve([str(dataset)])
    (dataset / "a-circle.gif").unlink()
    with pytest.raises(SmaError, match=r"b-star.gif has no caption \(b-star.txt\) and `prompt` is empty"):
        captioned(resolve([str(dataset)]), "")
    with pytest.raises(SmaError, match="no reference video at"):
        resolve([str(tmp_path / "missing.mp4")])
    with pytest.raises(SmaError, match="give a reference video, several, or a folder of them"):
        resolve([])
    with pytest.raises(SmaError, match="an entry of `references` needs `path`"):
        load_config(overrides={"references": [{"video": "a.mp4"}]})
    with pytest.raises(SmaError, match="dmt guides generation with one reference video, got 2"):
        resolve_references(load_config(overrides={"method": "dmt", "references": [str(dataset)], "prompt": "x"}))
    controlvideo = {"method": "controlvideo", "references": [str(dataset)], "controlvideo.video": "depth.mp4"}
    controlvideo["prompt"] = "x"
    with pytest.raises(SmaError, match=r"`controlvideo\.video` holds the depth of one reference, but there are 2"):
        resolve_references(load_config(overrides=controlvideo))


def test_an_unreadable_video_is_named_before_anything_loads(dataset, tmp_path, capsys):
    (dataset / "c-broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    out = tmp_path / "run"
    model = tmp_path / "no-model-here"  # loading it would fail: the video's error must come first
    assert (
        main(["train", str(dataset), "--out", str(out), "--model", str(model), "--prompt", "x", "--frames", "4"]) == 2
    )
    assert "c-broken.mp4" in one_line_error(capsys)
    assert not out.exists()


def test_two_references_train_with_their_own_captions_in_a_seeded_order(model_dir, dataset, tmp_path, monkeypatch):
    seen = []
    original = VMC.loss

    def recording_loss(self, latents, text, generator):
        seen.append((latents, text))
        return original(self, latents, text, generator)

    monkeypatch.setattr(VMC, "loss", recording_loss)
    config = load_config(overrides=settings(model_dir, seed=5))
    out = train(config, [dataset], tmp_path / "run")
    assert config.references == []  # the caller's config is left as it was

    losses = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    drawn = [record["references"][0] for record in losses]
    assert drawn == [reference_draw(5, step, 2) for step in range(4)] and sorted(drawn) == [0, 0, 1, 1]
    about = json.loads((out / "run.json").read_text())
    assert [entry["prompt"] for entry in about["references"]] == ["a red circle sliding right", "a shape moving"]
    assert about["reference_order"]["seed"] == 5
    stored = sorted(path.name for path in (out / "references").iterdir())
    assert stored == ["00-a-circle.mp4", "01-b-star.mp4"]
    assert read_video(out / "references" / "01-b-star.mp4").shape == (4, SIZE, SIZE, 3)  # resized as any reference

    # each step saw the latents and the caption of the reference it drew: one cached tensor per reference
    latents = {index: next(lat for (lat, _), d in zip(seen, drawn, strict=True) if d == index) for index in (0, 1)}
    model = VMC.load_model(config)
    for (step_latents, text), index in zip(seen, drawn, strict=True):
        assert step_latents is latents[index]
        caption = about["references"][index]["prompt"]
        torch.testing.assert_close(text, model.encode_prompts([caption]), rtol=0, atol=0)
    adapter = Adapter.load(out / "adapter")  # generation inverts the first reference
    assert torch.equal(adapter.reference_latents, latents[0].cpu())
    assert adapter.config.prompt == "a red circle sliding right"  # its caption: the source prompt of inversion


def test_resume_refuses_a_changed_dataset(model_dir, dataset, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    load_config(overrides=settings(model_dir, **{"train.steps": 2, "train.checkpoint_every": 1})).save(recipe)
    out = tmp_path / "run"
    arguments = ["train", str(dataset), "--out", str(out), "--config", str(recipe)]
    assert main(arguments) == 0
    (dataset / "b-star.txt").write_text("a star")
    assert main([*arguments, "--resume", "--steps", "3"]) == 2
    error = one_line_error(capsys)
    assert "cannot resume" in error and "the reference videos (2 stored, 2 now; their sha256, captions" in error
    (dataset / "b-star.txt").unlink()
    clip(dataset / "c-square.mp4", shape="square")
    assert main([*arguments, "--resume", "--steps", "3"]) == 2
    assert "the reference videos (2 stored, 3 now" in one_line_error(capsys)
    (dataset / "c-square.mp4").unlink()
    assert main([*arguments, "--resume", "--steps", "3"]) == 0  # the same dataset resumes
    assert len((out / "losses.jsonl").read_text().splitlines()) == 3


def test_transfer_from_a_recipe_list_reports_against_every_reference(model_dir, dataset, tmp_path, capsys):
    second = clip(tmp_path / "square.mp4", shape="square", motion="zigzag")
    recipe = tmp_path / "recipe.yaml"
    references = [{"path": str(dataset / "a-circle.mp4"), "prompt": "a circle"}, str(second)]
    values = settings(model_dir, method="motiondirector", references=references, **{"motiondirector.lora_rank": 2})
    load_config(overrides=values | {"train.steps": 2}).save(recipe)
    out = tmp_path / "run"
    assert main(["transfer", "--out", str(out), "--config", str(recipe), "--target", "a cat"]) == 0
    assert "motion fidelity" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    (output,) = metrics["outputs"]
    assert [entry["reference"] for entry in output["per_reference"]] == [
        "references/00-a-circle.mp4",
        "references/01-square.mp4",
    ]
    assert output["per_reference"][0]["robust_motion_fidelity"] == output["robust_motion_fidelity"]  # the first
    assert output["per_reference"][0]["motion_fidelity_lk"] != output["per_reference"][1]["motion_fidelity_lk"]
    comparison = read_video(out / "comparison.mp4")
    assert comparison.shape[2] > 3 * SIZE  # two references and the output side by side
    assert np.array_equal(read_video(out / "reference.mp4"), read_video(out / "references" / "00-a-circle.mp4"))


def test_controlvideo_conditions_each_step_on_the_depth_of_its_reference(
    sd_dir, controlnet_dir, depth_model_dir, tmp_path, monkeypatch
):
    from sma.methods.controlvideo import ControlVideo

    controls = []
    original = ControlVideo.loss

    def recording_loss(self, latents, text, generator):
        controls.append(self.model.control)
        return original(self, latents, text, generator)

    monkeypatch.setattr(ControlVideo, "loss", recording_loss)
    first = clip(tmp_path / "circle.mp4")
    second = clip(tmp_path / "star.mp4", shape="star", motion="zigzag")
    values = settings(sd_dir, method="controlvideo", seed=1, **{"train.steps": 2, "train.checkpoint_every": 2})
    values |= {"controlvideo.controlnet": str(controlnet_dir), "controlvideo.depth_model": str(depth_model_dir)}
    out = train(load_config(overrides=values), [first, second], tmp_path / "run")
    drawn = [json.loads(line)["references"][0] for line in (out / "losses.jsonl").read_text().splitlines()]
    assert sorted(drawn) == [0, 1]
    by_reference = dict(zip(drawn, controls, strict=True))
    assert not torch.equal(by_reference[0], by_reference[1])  # each reference's own depth maps
    torch.testing.assert_close(Adapter.load(out / "adapter").conditions["depth"], by_reference[0].cpu())
