"""Tune-A-Video and ControlVideo inflate SD-1.5's real UNet and ControlNet-Depth (built on the meta device)
and train exactly what the official code trains: the oracles of tests/real_scale.py, written from
the official repositories independently of `sma`.
"""

from pathlib import Path

import pytest
from real_scale import controlvideo_official, sd15_controlnet_depth, sd15_unet, tuneavideo_official

from sma.backbones.text_to_image import TextToImageModel
from sma.methods.controlvideo import ControlVideo
from sma.methods.tuneavideo import TuneAVideo
from sma.recipes import load_config

CONFIGS = Path(__file__).parents[1] / "configs"


def meta_model(controlnet=None) -> TextToImageModel:
    """SD-1.5's UNet (and the ControlNet) on the meta device, not inflated yet; no VAE or text encoder."""
    return TextToImageModel(
        unet=sd15_unet(), controlnet=controlnet, vae=None, text_encoder=None, tokenizer=None, scheduler=None, source=""
    )


def parameter_names(model: TextToImageModel) -> set[str]:
    networks = model.denoisers().items()
    return {f"{prefix}.{name}" for prefix, network in networks for name, _ in network.named_parameters()}


def inflated(method_class, controlnet=None):
    """The method's trainable parameters, and the parameter names its inflation added, on SD-1.5 (meta)."""
    model = meta_model(controlnet)
    before = parameter_names(model)
    method_class.inflation.apply(model.unet, model.controlnet, model.count)
    method = method_class(model, load_config(CONFIGS / f"{method_class.name}-sd15.yaml"))
    return method.prepare(), parameter_names(model) - before


def assert_matches_oracle(trainable, official, models):
    assert set(trainable) == official.existing | set(official.added)
    for name, shape in official.added.items():
        assert tuple(trainable[name].shape) == shape, name
    assert all(parameter.is_meta for parameter in trainable.values())  # inflation created nothing real
    return sum(parameter.numel() for parameter in trainable.values()), official.count(models)


def test_tuneavideo_trains_the_official_set_on_sd15():
    trainable, added = inflated(TuneAVideo)
    fresh = sd15_unet()  # the oracle walks un-inflated models: its selection cannot lean on sma's modules
    official = tuneavideo_official(fresh)
    count, expected = assert_matches_oracle(trainable, official, {"unet": fresh})
    print("tuneavideo", len(trainable), count)
    assert count == expected == 74_354_880
    assert len(trainable) == 16 * 7  # attn1.to_q, attn2.to_q, attn_temp q/k/v/out weight and out bias
    norms = {name for name in added if ".norm_temp." in name}
    assert len(norms) == 16 * 2 and not norms & set(trainable)  # every block, mid block included; not trained
    assert added == set(official.added) | norms


def test_controlvideo_trains_the_official_set_on_sd15():
    trainable, added = inflated(ControlVideo, sd15_controlnet_depth())
    fresh = {"unet": sd15_unet(), "controlnet": sd15_controlnet_depth()}
    official = controlvideo_official(fresh["unet"], fresh["controlnet"])
    count, expected = assert_matches_oracle(trainable, official, fresh)
    print("controlvideo", len(trainable), count)
    assert count == expected == 72_130_240
    assert added == set(official.added)  # attn_temp and conv_temp only, in 15 UNet blocks
    assert len({name.rsplit(".attn_temp.", 1)[0] for name in added if ".attn_temp." in name}) == 15
    assert not any(name.startswith(("controlnet.", "unet.mid_block")) for name in added)
    assert sum(name.startswith("controlnet.") for name in trainable) == 7 * 2  # attn1.to_out.0 weight and bias


@pytest.mark.parametrize("method_class", [TuneAVideo, ControlVideo])
def test_every_attn1_attends_across_frames(method_class):
    """The frame pattern reaches every spatial self-attention, ControlNet included; temporal attention keeps
    diffusers' plain processor."""
    model = meta_model(sd15_controlnet_depth())
    method_class.inflation.apply(model.unet, model.controlnet, model.count)
    for network in model.denoisers().values():
        processors = {name: type(processor).__name__ for name, processor in network.attn_processors.items()}
        assert {name for name, kind in processors.items() if kind == "CrossFrameAttnProcessor"} == {
            name for name in processors if name.endswith("attn1.processor")
        }
