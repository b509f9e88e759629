"""ControlVideo: Stable Diffusion 1.x + ControlNet-Depth inflated with key-frame attention, plain noise MSE."""

from __future__ import annotations

from typing import ClassVar

import torch

from sma.backbones.depth import estimate_depth, read_depth_video
from sma.backbones.inflation import Inflation
from sma.backbones.text_to_image import TextToImageModel
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.methods.tuneavideo import TuneAVideo


class ControlVideo(TuneAVideo):
    """ControlVideo (Zhao et al.): every frame attends to frame 0 (key-frame attention, in the UNet and the
    ControlNet); each UNet transformer block outside the mid block gains a temporal attention beside
    attn1; each prediction is conditioned on the depth of the reference's frames through the ControlNet.

    Trains, as the official `trainable_modules` (configs/default/depth.yaml), the parameters of
    modules whose name ends with `attn1.to_out` (UNet and ControlNet), `attn_temp` or `conv_temp`.
    The reference is inverted with the source prompt and the depth maps.
    """

    name = "controlvideo"
    inflation: ClassVar[Inflation] = Inflation(
        attention="key_frame", temporal="beside_self_attention", temporal_in_mid_block=False
    )
    trained_modules: ClassVar[tuple[str, ...]] = ("attn1.to_out", "attn_temp", "conv_temp")

    @classmethod
    def validate(cls, config: TransferConfig) -> None:
        if not (config.options.video or config.options.depth_model):
            raise SmaError(
                "controlvideo needs the depth of the reference: set `controlvideo.video` (depth maps) "
                "or `controlvideo.depth_model` (a transformers depth-estimation model)"
            )

    @classmethod
    def check_references(cls, config: TransferConfig, count: int) -> None:
        if count > 1 and config.options.video:
            raise SmaError(
                f"`controlvideo.video` holds the depth of one reference, but there are {count}: set "
                "`controlvideo.depth_model` instead, to estimate the depth of each"
            )

    @classmethod
    def load_model(cls, config: TransferConfig, device: str | torch.device = "cpu") -> TextToImageModel:
        options = config.options
        model = TextToImageModel.from_pretrained(
            config.model,
            cls.inflation,
            device,
            controlnet=options.controlnet,
            revision=config.revision or None,
        )
        model.control_scale = options.scale
        return model

    def condition_on(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """Depth maps of the reference: given as a video (`controlvideo.video`) or estimated (`.depth_model`)."""
        if self.options.video:
            return {"depth": read_depth_video(self.options.video, self.config.video)}
        return {"depth": estimate_depth(self.options.depth_model, clip)}

    def set_conditions(self, conditions: dict[str, torch.Tensor]) -> None:
        self.model.control = conditions["depth"]

    def inversion_prompt(self) -> str:
        """The source prompt (official sampling.py:15-19), with the depth maps set on the model."""
        return self.config.prompt
