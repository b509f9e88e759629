"""DMT on the real ZeroScope UNet built on the meta device: the default taps are the official ones,
and at 24 frames of 320x576 the guidance forward stops right after them."""

from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler
from real_scale import dmt_official_features, zeroscope_unet

from sma.backbones.text_to_video import TextToVideoModel
from sma.methods.dmt import DMT
from sma.methods.options import DMTOptions
from sma.recipes import load_config


@pytest.fixture(scope="module")
def zeroscope():
    return zeroscope_unet()


def official_modules(unet) -> list[str]:
    """The oracle's taps as the modules whose forward output is the feature: for the resnet read
    before its shortcut is added, its conv2 (ResnetBlock2D adds the shortcut right after conv2)."""
    return [
        f"{name}.conv2" if what.startswith("conv2 output, before the shortcut") else name
        for name, what in dmt_official_features(unet).items()
    ]


def test_default_layers_are_the_official_taps(zeroscope):
    assert (
        DMTOptions().layers
        == official_modules(zeroscope)
        == [
            "up_blocks.1.upsamplers.0",
            "up_blocks.1.resnets.1.conv2",
            "up_blocks.1.temp_convs.1",
        ]
    )
    resnet = zeroscope.get_submodule("up_blocks.1.resnets.1")
    assert type(resnet).__name__ == "ResnetBlock2D" and resnet.conv_shortcut is not None  # a skip to be before


@pytest.mark.parametrize("offset", [0, 1])
def test_guidance_features_at_24_frames_stop_after_up_blocks_1(zeroscope, offset):
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", set_alpha_to_one=False, steps_offset=offset
    )
    model = TextToVideoModel(zeroscope, None, None, None, scheduler, source="ZeroScope UNet on the meta device")
    recipe = load_config(Path(__file__).parents[1] / "configs" / "dmt-zeroscope.yaml")
    method = DMT(model, recipe)  # 999 inversion steps pass through the 50 sampling timesteps
    order = []
    block = zeroscope.up_blocks[1]
    watched = {f"up_blocks.1.{name}": module for name, module in block.named_children()}
    watched = {f"{name}.{index}": module for name, modules in watched.items() for index, module in enumerate(modules)}
    watched |= {"up_blocks.2": zeroscope.up_blocks[2], "conv_out": zeroscope.conv_out}
    handles = [module.register_forward_hook(lambda *_, n=name: order.append(n)) for name, module in watched.items()]
    latents = torch.empty(1, 4, 24, 40, 72, device="meta")
    text = torch.empty(1, 77, 1024, device="meta")
    try:
        videos = method.feature_videos(latents, torch.tensor(981), text)
    finally:
        for handle in handles:
            handle.remove()
    assert order[-1] == "up_blocks.1.upsamplers.0"  # the last module of up_blocks.1, and the UNet stopped there
    assert "up_blocks.2" not in order and "conv_out" not in order
    assert {name: tuple(video.shape) for name, video in videos.items()} == {
        "up_blocks.1.upsamplers.0": (1, 1280, 24, 20, 36),
        "up_blocks.1.resnets.1.conv2": (1, 1280, 24, 10, 18),
        "up_blocks.1.temp_convs.1": (1, 1280, 24, 10, 18),
    }
