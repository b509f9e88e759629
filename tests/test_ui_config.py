"""The page's fields -> the runs' configurations, for methods that train and methods that train nothing."""

import pytest

pytest.importorskip("gradio", reason="the ui extra is not installed: pip install -e '.[ui]'")

from sma.ui import TOY_WORLD, make_job


def form(method: str, sma: bool, recipe: str = TOY_WORLD) -> dict:
    return {
        "recipe": recipe,
        "method": method,
        "model": "",
        "prompt": "a red circle moving right",
        "targets": "a blue square",
        "sma.enabled": sma,
        "compare": True,
        "generate.untuned": True,
        "sma.global_weight": 0.4,
        "sma.local_weight": 0.2,
        "train.steps": 20,
        "video.frames": 8,
        "video.height": 64,
        "video.width": 64,
        "generate.steps": 10,
        "generate.inversion_steps": 10,
        "seed": 0,
        "name": "",
        "resume": False,
    }


@pytest.mark.parametrize("recipe", [TOY_WORLD, "flowmotion-zeroscope"])
def test_the_sma_switch_of_flowmotion_adds_sma_beside_the_official_loss(recipe, tmp_path):
    job = make_job(form("flowmotion", True, recipe), "clip.mp4", tmp_path)
    assert list(job.configs) == ["sma", "nosma"]
    assert job.configs["sma"].options.motion_loss == "both" and job.configs["sma"].sma.enabled
    assert job.configs["nosma"].options.motion_loss == "official" and not job.configs["nosma"].generate.untuned
    assert job.configs["sma"].train.steps == 400  # untouched: FlowMotion trains nothing


@pytest.mark.parametrize("method", ["vmc", "dmt"])
def test_the_page_runs_trained_and_zero_shot_methods(method, tmp_path):
    configs = make_job(form(method, False), "clip.mp4", tmp_path).configs
    assert list(configs) == ["nosma"] and configs["nosma"].train.steps == (20 if method == "vmc" else 400)


def test_an_uploaded_image_starts_every_target(tmp_path):
    page = form("flowmotion", True, "flowmotion-wan2.2-ti2v-5b") | {"image": "/uploads/cat.png"}
    configs = make_job(page, "clip.mp4", tmp_path).configs
    assert {config.image for config in configs.values()} == {"/uploads/cat.png"}
    assert (
        make_job(form("flowmotion", True, "flowmotion-wan2.2-ti2v-5b"), "clip.mp4", tmp_path).configs["sma"].image == ""
    )


def test_the_page_has_every_field_and_offers_the_demos_references(tmp_path):
    from sma.embedded.scenes import DEMO_SCENES, REFERENCE_MOTIONS
    from sma.ui import FIELDS, build

    _, app = build(tmp_path)
    assert sorted(app.names.values()) == sorted([*FIELDS, "reference"])  # every field reaches the run handler
    examples = app.examples()
    assert list(examples) == list(REFERENCE_MOTIONS) and DEMO_SCENES["simple"]["objects"] is REFERENCE_MOTIONS["zigzag"]
    path, prompt, target = examples["zigzag"]
    assert (tmp_path / ".examples" / "zigzag.mp4").is_file() and path.endswith("zigzag.mp4")
    assert "zigzag" in prompt and target == "a blue square on a plain white background"
