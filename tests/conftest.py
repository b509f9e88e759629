import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """A red circle moving right, 8 frames of 32x32, as an mp4: the reference clip of the method tests."""
    from sma.video import MovingObject, synthetic_video, write_video

    clip = synthetic_video(MovingObject("circle", "red", "linear"), num_frames=8, height=32, width=32)
    return write_video(tmp_path_factory.mktemp("reference") / "circle.mp4", clip.frames)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny text-to-video model in ZeroScope's layout (UNet3D, VAE, CLIP text encoder), loaded by path."""
    from tiny_models import build_text_to_video

    return build_text_to_video(tmp_path_factory.mktemp("zeroscope-tiny"))


@pytest.fixture(scope="session")
def sd_dir(tmp_path_factory):
    """A tiny Stable-Diffusion-1.x-layout model (UNet2D, VAE, CLIP text encoder), loaded by path."""
    from tiny_models import build_text_to_image

    return build_text_to_image(tmp_path_factory.mktemp("sd-tiny"))


@pytest.fixture(scope="session")
def controlnet_dir(tmp_path_factory):
    """A tiny ControlNet for `sd_dir`, saved like lllyasviel/sd-controlnet-depth."""
    from tiny_models import build_controlnet

    return build_controlnet(tmp_path_factory.mktemp("controlnet-tiny"))


@pytest.fixture(scope="session")
def depth_model_dir(tmp_path_factory):
    """A tiny Depth Anything (DINOv2 backbone) with its image processor, as on the Hub."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    folder = tmp_path_factory.mktemp("depth-anything-tiny")
    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=28,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=8,
        head_hidden_size=8,
    )
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    processor = DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=False, do_pad=False)
    processor.save_pretrained(folder)
    return folder


def pytest_terminal_summary(terminalreporter):
    """The count `make faults` reports (a fixture's teardown would print it into pytest's capture, unseen)."""
    hit = getattr(sys.modules.get("kill_points"), "HIT", None)
    if hit:
        counts = ", ".join(f"{name} {count}" for name, count in hit.items())
        terminalreporter.write_line(f"kill -9 at {sum(hit.values())} points, every one recovered ({counts})")
