"""Pick the text-to-video backbone a model folder or Hub id needs, from its model_index.json."""

from __future__ import annotations

import torch

from sma.backbones.hub import model_index
from sma.errors import SmaError

IMAGE_UNET = "UNet2DConditionModel"  # Stable Diffusion 1.x
WAN_TRANSFORMER = "WanTransformer3DModel"


def load_text_to_video(
    source: str,
    device: str | torch.device = "cpu",
    revision: str | None = None,
    motion_adapter: str | None = None,
    wan: bool | None = False,
    wan_text: dict | None = None,
):
    """AnimateDiff (an SD-1.x model and a `motion_adapter`), Show-1 base (`TextToVideoIFPipeline`), Wan (2.1
    text-to-video, 2.2 TI2V-5B, 2.1 image-to-video, 2.2 A14B text- and image-to-video; only when `wan` is not
    False: True for the methods built for Wan alone, None for those that run on any backbone; `wan_text`: its text
    encoding, `WanModel.text_tokens` and `text_dtype`, where not the defaults) or a diffusers UNet3D model
    (ZeroScope, ModelScope)."""
    from sma.backbones.animatediff import AnimateDiffModel
    from sma.backbones.wan import WanModel

    backbone = text_to_video_class(source, revision, motion_adapter, wan)
    if backbone is AnimateDiffModel:
        return backbone.from_pretrained(source, motion_adapter, device=device, revision=revision)
    if issubclass(backbone, WanModel):  # no index: loading says what is missing
        scheduler = (model_index(source, revision).get("scheduler") or ["", "UniPCMultistepScheduler"])[1]
        return backbone.from_pretrained(source, scheduler, device=device, revision=revision, **(wan_text or {}))
    return backbone.from_pretrained(source, device=device, revision=revision)


def text_to_video_class(
    source: str, revision: str | None = None, motion_adapter: str | None = None, wan: bool | None = False
) -> type:
    """The backbone class `load_text_to_video` builds for these sources, read from the model's
    model_index.json without loading any weights."""
    from sma.backbones.animatediff import AnimateDiffModel
    from sma.backbones.show1 import PIPELINE, Show1Model
    from sma.backbones.text_to_video import TextToVideoModel

    index = model_index(source, revision)
    if wan or is_wan(index):
        return _wan_class(source, index, wan)
    unet_library, unet_class = (index.get("unet") or ["", ""])[:2]
    if motion_adapter is not None:
        if unet_class not in ("", IMAGE_UNET):
            raise SmaError(
                f"`motion_adapter` turns a Stable Diffusion 1.x model into AnimateDiff, but {source} has a "
                f"{unet_class}: leave `motion_adapter` empty or choose an SD-1.x model"
            )
        return AnimateDiffModel
    if unet_class == IMAGE_UNET:
        raise SmaError(
            f"{source} is an image model ({IMAGE_UNET}): set `motion_adapter` (an AnimateDiff MotionAdapter, "
            "e.g. guoyww/animatediff-motion-adapter-v1-5-3) to run it as AnimateDiff, or use a method built "
            "on image models (tuneavideo, controlvideo)"
        )
    if unet_library.startswith("showone"):
        if index.get("_class_name") != PIPELINE:
            raise SmaError(
                f"{source} is a Show-1 {index.get('_class_name')}: the model is the base stage ({PIPELINE}, "
                "e.g. showlab/show-1-base); later stages are set in `show1` (interpolation, image_sr, sr1, sr2)"
            )
        return Show1Model
    return TextToVideoModel


def is_wan(index: dict) -> bool:
    transformer = (index.get("transformer") or ["", ""])[1]
    return transformer == WAN_TRANSFORMER or index.get("_class_name", "").startswith("Wan")


def _wan_class(source: str, index: dict, wan: bool | None) -> type:
    """Wan text-to-video (2.1, 2.2 A14B), or Wan image-to-video (2.2 TI2V-5B, 2.1 I2V, 2.2 I2V-A14B), checked from
    model_index.json before anything loads."""
    from sma.backbones.wan import PIPELINE, WanModel
    from sma.backbones.wan_i2v import PIPELINE as IMAGE_PIPELINE
    from sma.backbones.wan_i2v import WanImageToVideoModel, is_image_to_video

    if wan is False:
        raise SmaError(
            f"{source} is a Wan model: the method that trains on it is motionlora, and flowmotion guides it "
            "without training (`method`)"
        )
    if index and index.get("_class_name") not in (PIPELINE, IMAGE_PIPELINE):
        raise SmaError(
            f"{source} is a {index.get('_class_name')}, not a Wan text- or image-to-video model ({PIPELINE}, "
            f"{IMAGE_PIPELINE}, e.g. Wan-AI/Wan2.1-T2V-1.3B-Diffusers, Wan-AI/Wan2.2-TI2V-5B-Diffusers)"
        )
    if ((index.get("transformer_2") or [None, None])[1] is None) != (index.get("boundary_ratio") is None):
        raise SmaError(f"{source} is a Wan 2.2 A14B layout only by half: it needs `transformer_2` and `boundary_ratio`")
    if is_image_to_video(index):
        return WanImageToVideoModel
    return WanModel
