"""Real-size trainable sets on the meta device (no weights), against the official selection rules,
and random draws that would work on a GPU."""

import torch
from real_scale import meta_text_to_video, modelscope_unet, parameter_count, vmc_official, zeroscope_unet
from torch.overrides import TorchFunctionMode

from sma.methods import build_method
from sma.methods.vmc import VMC
from sma.recipes import load_config
from tiny_models import build_text_to_video


def test_vmc_trains_what_the_official_code_trains():
    for unet in (zeroscope_unet(), modelscope_unet()):
        trainable = VMC(meta_text_to_video(unet), load_config(overrides={"method": "vmc"})).prepare()
        assert set(trainable) == vmc_official(unet)
        assert parameter_count(unet, set(trainable)) == 74_342_400
        assert all(parameter.requires_grad == (name in trainable) for name, parameter in unet.named_parameters())


RANDOM_DRAWS = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.normal, torch.multinomial}


class DrawsOnTheGeneratorsDevice(TorchFunctionMode):
    """Fails any random draw that takes a generator without naming the device to draw on.

    On a GPU the generator lives with the latents (CUDA); a draw without `device` happens on the
    CPU and raises "Expected a 'cpu' device type for generator but found 'cuda'". On the CPU the
    same call works, so this check is what catches it here.
    """

    def __init__(self) -> None:
        super().__init__()
        self.draws = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        generator = kwargs.get("generator")
        if func in RANDOM_DRAWS and generator is not None:
            self.draws += 1
            device = kwargs.get("device")
            assert device is not None and torch.device(device).type == generator.device.type, (
                f"{func.__name__} with a generator on {generator.device} draws on {device or 'the CPU'}"
            )
        return func(*args, **kwargs)


def test_every_method_draws_where_its_generator_lives(tmp_path):
    folder = build_text_to_video(tmp_path / "model")
    for method_name in ("vmc", "motiondirector"):
        overrides = {"method": method_name, "model": str(folder), "video.height": 16, "video.width": 16}
        overrides |= {"generate.steps": 2, "generate.inversion_steps": 2}
        method = build_method(load_config(overrides=overrides))
        method.prepare()
        latents = torch.randn(1, 4, 8, 8, 8)
        text = method.model.encode_prompts(["x"])
        with DrawsOnTheGeneratorsDevice() as mode:
            method.loss(latents, text, torch.Generator().manual_seed(0))
            method.generate(latents, "y", seed=0)
        assert mode.draws >= 3, method_name
