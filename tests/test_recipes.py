"""Every shipped recipe loads, and the text-to-video ones hold their official settings (docs/methods.md)."""

from pathlib import Path

import pytest

from sma.errors import SmaError
from sma.recipes import load_config

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("recipe", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_recipe_loads(recipe):
    config = load_config(CONFIGS / recipe)
    assert recipe.startswith(config.method)


@pytest.mark.parametrize("backbone", ["zeroscope", "modelscope", "animatediff"])
def test_vmc_recipe_is_the_official_setting(backbone):
    config = load_config(CONFIGS / f"vmc-{backbone}.yaml")
    train, generate = config.train, config.generate
    assert (train.learning_rate, train.steps, train.max_grad_norm, train.mixed_precision) == (1e-4, 400, 1.0, "fp16")
    assert (generate.inversion_steps, generate.steps, generate.guidance_scale, generate.noise_prior) == (75, 75, 9, 1)


@pytest.mark.parametrize("backbone", ["zeroscope", "modelscope", "animatediff"])
def test_motiondirector_recipe_is_the_official_setting(backbone):
    config = load_config(CONFIGS / f"motiondirector-{backbone}.yaml")
    train, generate, lora = config.train, config.generate, config.options
    assert (train.learning_rate, train.steps, train.max_grad_norm, train.mixed_precision) == (5e-4, 150, 0, "fp16")
    assert (lora.lora_rank, lora.lora_dropout, lora.spatial_dropout) == (32, 0.1, 0.2)
    assert (generate.inversion_steps, generate.steps, generate.guidance_scale) == (50, 30, 12)


def test_a_shipped_recipe_loads_by_name():
    assert load_config("vmc-zeroscope") == load_config(CONFIGS / "vmc-zeroscope.yaml")


def test_an_unknown_recipe_name_lists_the_shipped_ones():
    from sma.errors import SmaError

    with pytest.raises(SmaError, match=r"shipped are .*vmc-zeroscope"):
        load_config("vmc-zeroscop")


def test_flag_help_gives_the_default_without_a_recipe(capsys):
    from sma.cli import main

    with pytest.raises(SystemExit):
        main(["transfer", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "training steps (without a recipe: 400)" in help_text
    assert "--steps STEPS" in help_text and "TRAIN.STEPS" not in help_text


def test_the_shipped_models_by_name_at_their_own_size(model_dir):
    """Issue 35: with the embedded model and no size given, training ran at 320x576 (200 s a step on 2 cores)."""
    from sma.embedded import embedded_model

    simple = load_config(overrides={"model": "embedded"})
    assert simple.model == embedded_model("simple")
    assert (simple.video.frames, simple.video.height, simple.video.width) == (8, 64, 64)
    hard = load_config(overrides={"model": "embedded-hard", "video.height": 32})
    assert (hard.model, hard.video.frames, hard.video.height, hard.video.width) == (embedded_model("hard"), 16, 32, 64)
    tiny = load_config(overrides={"model": str(model_dir)})  # a model that names no size: the defaults
    assert (tiny.video.height, tiny.video.width) == (320, 576)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([None, None], r"recipe key sma.level_weights\[0\] must be a number, got None"),
        ([1, "x"], r"recipe key sma.level_weights\[1\] must be a number, got 'x'"),
        (["a blue square", 3], r"recipe key targets\[1\] must be text, got 3"),
    ],
)
def test_each_item_of_a_list_of_numbers_or_text_is_checked(value, message):
    """`make faults`' fuzzing found `sma.level_weights: [null, null]` a TypeError deep in the loss."""
    key = "targets" if isinstance(value[0], str) else "sma.level_weights"
    with pytest.raises(SmaError, match=message):
        load_config(overrides={key: value})
    assert load_config(overrides={"sma.level_weights": [1, 0.5, 1]}).sma.level_weights == [1.0, 0.5, 1.0]


@pytest.mark.parametrize(("kind", "shift", "guidance", "guidance_2"), [("t2v", 12.0, 4.0, 3.0), ("i2v", 5.0, 3.5, 3.5)])
def test_wan22_a14b_recipes_sample_as_the_official_configs(kind, shift, guidance, guidance_2):
    """Wan's wan/configs/wan_{t2v,i2v}_A14B.py: sample_shift, 40 steps, sample_guide_scale (low, high noise)."""
    for method in ("motionlora", "flowmotion"):
        config = load_config(CONFIGS / f"{method}-wan2.2-{kind}-a14b.yaml")
        generate = config.generate
        assert (generate.steps, generate.guidance_scale, generate.guidance_scale_2) == (40, guidance, guidance_2)
        own_shift = config.options.sample_shift if method == "motionlora" else config.options.flow_shift
        assert own_shift == shift and config.model == f"Wan-AI/Wan2.2-{kind.upper()}-A14B-Diffusers"
        if method == "motionlora":  # DiffSynth-Studio's A14B LoRA: rank 32, q/k/v/o and the feed-forward, lr 1e-4
            lora, train = config.options, config.train
            assert (lora.lora_rank, lora.feed_forward, lora.experts, train.learning_rate) == (32, True, "both", 1e-4)


def test_the_sma_preset_sets_what_it_names_and_refuses_other_values(tmp_path):
    """Issue 41: `sma.preset: low-leakage` is the setting results/hard-share measured; a recipe that sets one of its
    keys otherwise is an error, not a silent loser, and the saved run's recipe (both, the same) loads again."""
    config = load_config(overrides={"method": "vmc", "sma.preset": "low-leakage"})
    assert (config.sma.share, config.sma.timestep_weight) == (0.2, "alpha_bar")
    config.save(tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    with pytest.raises(SmaError, match=r"`sma.preset: low-leakage` sets `sma.share` to 0.2, not 0.5"):
        load_config(overrides={"method": "vmc", "sma.preset": "low-leakage", "sma.share": 0.5})
    with pytest.raises(SmaError, match=r"unknown `sma.preset` 'leakage': expected one of low-leakage"):
        load_config(overrides={"method": "vmc", "sma.preset": "leakage"})
