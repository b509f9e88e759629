"""The field's tables through `sma benchmark`: a folder in MTBench's layout that the simple world writes (three
clips in difficulty folders, with masks and prompts) and the SMA paper's protocol, on the tiny model with tiny CLIP
and DINO models; the scores checked against DeT's formulas written out here."""

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from benchmark_scripts import load_script
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel, ViTModel

from sma.benchmark import read_results, read_suite, summary_text
from sma.benchmark.field import mtbench_table
from sma.cli import main
from sma.embedded.world import write_mtbench_folder
from sma.metrics.dino import DinoUnavailableError, load_dino
from sma.metrics.mtbench import mtbench_from_tracks, mtbench_motion_fidelity
from sma.video import read_video
from tiny_models import build_tiny_clip, build_tiny_dino

FAST = [f"--set={key}" for key in ("video.frames=8", "video.height=32", "video.width=32", "generate.steps=2")]
FAST += ["--set=generate.inversion_steps=2"]


@pytest.fixture(scope="module")
def field(tmp_path_factory, model_dir):
    """Both suites run once, untuned (nothing trains), one evaluation prompt a clip."""
    root = tmp_path_factory.mktemp("field")
    folder = write_mtbench_folder(root / "MTBench", frames=8, size=32)
    for prompts in folder.glob("*/*/eval_prompts.txt"):
        prompts.write_text(prompts.read_text().splitlines()[0] + " \n")  # DeT's files end prompts with spaces
    clip, dino = build_tiny_clip(root / "clip"), build_tiny_dino(root / "dino")
    common = ["--model", str(model_dir), "--variants", "untuned", *FAST]
    mtbench = [str(folder), "--methods", "vmc", "--clip", str(clip), "--dino", str(dino), "--out", str(root / "mt")]
    assert main(["benchmark", *mtbench, *common]) == 0
    suite = {
        "protocol": "paper",
        "clip": str(clip),
        "methods": ["vmc"],
        "variants": ["untuned"],
        "references": [
            {
                "path": str(folder / "easy" / "diagonal" / "videos" / "diagonal.mp4"),
                "prompt": "a red circle moving diagonally",
                "targets": ["a green triangle on a plain white background"],
            }
        ],
    }
    (root / "paper.yaml").write_text(yaml.safe_dump(suite))
    assert main(["benchmark", str(root / "paper.yaml"), "--out", str(root / "paper"), *common]) == 0
    return SimpleNamespace(folder=folder, clip=clip, dino=dino, mtbench=root / "mt", paper=root / "paper")


def test_an_mtbench_folder_is_every_clip_and_prompt_with_the_three_scores(field):
    records = read_results(field.mtbench)
    assert sorted((r["reference"], r["level"]) for r in records) == [
        ("circle", "medium"),
        ("diagonal", "easy"),
        ("zigzag", "hard"),
    ]
    assert {r["target"] for r in records} == {"a blue square on a plain white background"}  # stripped
    settings = yaml.safe_load((field.mtbench / "settings.yaml").read_text())
    assert settings["scoring"] == {"protocol": "mtbench", "clip": str(field.clip), "dino": str(field.dino)}
    again = read_suite(field.mtbench / "suite.yaml")  # the folder's run as a suite file (what --rescore reads)
    assert sorted(cell.id for cell in again.cells()) == sorted(r["cell"] for r in records)
    assert (again.scoring.clip, again.scoring.dino) == (str(field.clip), str(field.dino))
    summary = (field.mtbench / "summary.md").read_text()
    assert "| method | all EF | all TC | all MF | hard EF |" in summary
    assert "| SMA [DeT] | 31.6 | 82.9 | 55.1 | 32.9 | 78.1 | 44.1 |" in summary  # DeT's published rows, cited
    assert "Shi-qingyu/DeT at 2a2f4dd" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| vmc (untuned) |")).split(" | ")[1:]
    by_level = {r["level"]: r for r in records}
    for index, level in enumerate(("all", "hard", "medium", "easy")):
        chosen = records if level == "all" else [by_level[level]]
        ef = np.mean([r["mtbench_text_fidelity"] for r in chosen])
        assert row[3 * index] == f"{ef:.1f}"
        tc = np.mean([r["mtbench_temporal_consistency"] for r in chosen])
        assert row[3 * index + 1] == f"{100 * tc:.1f}"


def test_the_scores_are_dets_formulas(field):
    """EF: CLIP's logits_per_image for DeT's prompt, averaged over frames; TC: DINO pooler outputs against the
    first and previous frames; MF: MTBench's hybrid on the tracks inside the box around the first frame's mask."""
    model, tokenizer = CLIPModel.from_pretrained(field.clip).eval(), AutoTokenizer.from_pretrained(field.clip)
    clip_pixels = AutoImageProcessor.from_pretrained(field.clip)
    vit, vit_pixels = ViTModel.from_pretrained(field.dino).eval(), AutoImageProcessor.from_pretrained(field.dino)
    defined = 0
    for record in read_results(field.mtbench):
        frames = read_video(field.mtbench / record["video"])
        reference = read_video(field.mtbench / "cells" / record["cell"] / "reference.mp4")
        prompt = "a blue square on a plain white background."  # no trailing spaces, one full stop
        with torch.no_grad():
            tokens = tokenizer([prompt] * len(frames), padding=True, return_tensors="pt")
            pixels = clip_pixels(images=list(frames), return_tensors="pt")["pixel_values"]
            logits = model(input_ids=tokens["input_ids"], pixel_values=pixels).logits_per_image
            features = vit(pixel_values=vit_pixels(images=list(frames), return_tensors="pt")["pixel_values"])
        assert record["mtbench_text_fidelity"] == pytest.approx(float(logits.diagonal().mean()), abs=1e-4)
        unit = torch.nn.functional.normalize(features.pooler_output, dim=-1)
        first = [float(unit[k] @ unit[0]) for k in range(len(unit))]
        previous = [float(unit[k] @ unit[max(k - 1, 0)]) for k in range(len(unit))]
        assert record["mtbench_temporal_consistency"] == pytest.approx((np.mean(first) + np.mean(previous)) / 2, 1e-5)
        clip = field.folder / record["level"] / record["reference"]
        rows, columns = np.nonzero(np.asarray(Image.open(clip / "masks" / record["reference"] / "00000.png")))
        box = (columns.min(), rows.min(), columns.max(), rows.max())  # 32 px in the folder and in the run
        expected = mtbench_motion_fidelity(reference, frames, box=box).as_dict()["hybrid"]
        assert record["mtbench_motion_fidelity"] == pytest.approx(expected)  # None where no track in the box lasts
        if expected is not None:
            defined += 1
            assert record["mtbench_motion_fidelity"] != pytest.approx(mtbench_motion_fidelity(reference, frames).hybrid)
    assert defined  # the formula met on tracks, not only on undefined scores


def test_cotracker_tracks_beside_the_videos_are_scored_on_rescoring(field, tmp_path):
    """CoTracker's tracks, saved beside a cell's reference.mp4 and its output, give `mtbench_cotracker` when the
    folder is scored again; the table's MF moves onto them once every output has them."""
    out = shutil.copytree(field.mtbench, tmp_path / "mt")
    (record, *_) = read_results(out)
    grid = np.stack(np.meshgrid(np.arange(4.0, 32, 8), np.arange(4.0, 32, 8)), -1).reshape(-1, 2)
    right = np.stack([grid + np.array([k, 0]) for k in range(8)])[None]  # (1, f, n, 2) pixels, as CoTracker gives them
    left = np.stack([grid - np.array([k, 0]) for k in range(8)])[None]
    np.save(out / "cells" / record["cell"] / "reference.tracks.npy", right)
    torch.save(torch.from_numpy(left), (out / record["video"]).with_suffix(".tracks.pt"))
    rescored = load_script("summarise").rescore(out)
    given = {r["cell"]: r.get("mtbench_cotracker") for r in rescored}
    expected = mtbench_from_tracks(right, left, (32, 32), (32, 32)).hybrid
    assert given.pop(record["cell"]) == pytest.approx(expected) and set(given.values()) == {None}
    assert "MF on sma's DIS-flow tracks" in summary_text(rescored, "mt")
    on_tracks = [r | {"mtbench_cotracker": 0.5} for r in rescored]
    assert "MF on CoTracker's tracks" in summary_text(on_tracks, "mt")
    assert "| vmc (untuned) | " in mtbench_table(on_tracks) and " | 50.0 | " in mtbench_table(on_tracks)


def test_the_paper_protocol_scores_clip_text_alignment_and_consistency(field):
    (record,) = read_results(field.paper)
    assert 0 < record["clip_frame_consistency"] <= 1 and -1 <= record["clip_text_alignment"] <= 1
    assert "mtbench_text_fidelity" not in record and "level" not in record
    summary = (field.paper / "summary.md").read_text()
    line = f"| vmc (untuned) | {record['clip_text_alignment']:.4f} | {record['clip_frame_consistency']:.4f} |"
    assert line in summary and "| MotionDirector (sma) [paper] | 0.8081 | - |" in summary
    assert "MTBench as DeT's table" not in summary


@pytest.mark.parametrize(
    ("removed", "message"),
    [
        ("masks/zigzag/00000.png", "MTBench clip zigzag: no masks/zigzag/00000.png (its first frame's mask)"),
        ("eval_prompts.txt", "MTBench clip zigzag: no eval_prompts.txt (its evaluation prompts)"),
        ("prompts.txt", "MTBench clip zigzag: no prompts.txt (its caption)"),
    ],
)
def test_a_missing_mask_or_prompt_file_is_one_line(field, tmp_path, capsys, removed, message):
    folder = shutil.copytree(field.folder, tmp_path / "MTBench")
    (folder / "hard" / "zigzag" / removed).unlink()
    assert main(["benchmark", str(folder), "--methods", "vmc", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"sma: error: {message}"
    assert main(["benchmark", str(field.folder), "--out", str(tmp_path / "out")]) == 2
    assert "name the methods to run on it (--methods" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "arguments", "message"),
    [
        ({"protocol": "vbench"}, [], "protocol must be one of mtbench, paper, got 'vbench'"),
        ({"mtbench": "."}, [], "the suite names both references and an mtbench folder: keep one"),
        ({}, ["--clip", "clip-folder"], "--clip and --dino score a suite's protocol: give the suite one"),
    ],
)
def test_bad_protocol_settings_are_one_line(field, tmp_path, capsys, changes, arguments, message):
    video = field.folder / "easy" / "diagonal" / "videos" / "diagonal.mp4"
    suite = {
        "methods": ["vmc"],
        "variants": ["sma"],
        "references": [{"path": str(video), "prompt": "a", "targets": ["b"]}],
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite | changes))
    assert main(["benchmark", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out"), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and message in error


def test_dino_weights_that_are_not_there_are_one_line(tmp_path):
    with pytest.raises(DinoUnavailableError, match=r"DINO model unavailable: cannot load .*no weights sma reads there"):
        load_dino(tmp_path)
