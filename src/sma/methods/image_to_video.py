"""The image inputs of a transfer on an image-to-video backbone: which image starts which target, and the conditions.

`image` starts every target; `target_images` pairs one image with each of `targets`, in order; `last_image` ends
every target, on a first-and-last-frame model (Wan 2.1 FLF2V-14B, whose image embedder takes two pictures: it then
needs one). The reference is conditioned on its own first frame (training, FlowMotion's source estimate), and on its
last too on such a model; each target on its images. Checked with one line each before any model loads
(`check_image_inputs`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from PIL import Image

from sma.backbones.hub import model_index, model_json
from sma.backbones.wan_i2v import PIPELINE, ImageCondition, WanImageToVideoModel, is_image_to_video
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.video import tensor_to_frames
from sma.video.image import check_image, read_image

IMAGE_MODELS = "Wan-AI/Wan2.2-TI2V-5B-Diffusers, Wan-AI/Wan2.2-I2V-A14B-Diffusers, Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
FIRST_AND_LAST_MODEL = "Wan-AI/Wan2.1-FLF2V-14B-720P-Diffusers"


def image_for(config: TransferConfig, target: str) -> str:
    """The image that starts `target` ("" for none)."""
    if config.target_images:
        return config.target_images[config.targets.index(target)]
    return config.image


def check_image_settings(config: TransferConfig) -> None:
    """`image` and `target_images` as recipe values: one of them, one image per target, targets told apart."""
    if config.image and config.target_images:
        raise SmaError("give `image` (every target) or `target_images` (one per target), not both")
    if config.target_images:
        if len(config.target_images) != len(config.targets):
            raise SmaError(
                f"{len(config.target_images)} `target_images` for {len(config.targets)} `targets`: give one each"
            )
        if len(set(config.targets)) != len(config.targets):
            raise SmaError("with `target_images` every target prompt must differ (the image is found by prompt)")
    if config.last_image and not (config.image or config.target_images):
        raise SmaError("`last_image` ends the video that `image` (or `target_images`) starts: give that too")


def check_image_inputs(config: TransferConfig) -> None:
    """The images exist and can start a video of `video.*`, and the model takes them; before any model loads."""
    check_image_settings(config)
    images = [config.image] if config.image else list(config.target_images)
    for image in [*images, config.last_image] if config.last_image else images:
        check_image(image, config.video.height, config.video.width)
    index = model_index(config.model, config.revision or None)
    if images and index and not is_image_to_video(index):
        raise SmaError(f"{config.model} is not an image-to-video model: `image` needs one ({IMAGE_MODELS})")
    if not images and index.get("_class_name") == PIPELINE:
        raise SmaError(f"{config.model} is an image-to-video model: give the image each video starts from (`image`)")
    transformer = model_json(config.model, "transformer/config.json", config.revision or None)
    two = index.get("_class_name") == PIPELINE and transformer.get("pos_embed_seq_len") is not None
    if config.last_image and index and not two:
        raise SmaError(
            f"{config.model} starts a video from one picture: `last_image` needs a first-and-last-frame model "
            f"({FIRST_AND_LAST_MODEL})"
        )
    if two and not config.last_image:
        raise SmaError(f"{config.model} takes the first and the last frame: give the last too (`last_image`)")


class ImageConditioned:
    """Image conditions of a method on a Wan backbone: the reference's (from its first frame) and each target's.
    On a text-to-video backbone, or without images, every condition is None and nothing changes."""

    model: object
    config: TransferConfig
    reference_condition: ImageCondition | None = None

    @property
    def image_conditioned(self) -> bool:
        """On I2V-14B always; on TI2V-5B when images are given (without, it is a text-to-video model)."""
        if not isinstance(self.model, WanImageToVideoModel):
            return False
        return self.model.needs_image or bool(self.config.image or self.config.target_images)

    @property
    def given_frames(self) -> int:
        """Latent frames the model is given rather than asked to denoise (TI2V with an image: frame 0)."""
        return self.model.given_frames if isinstance(self.model, WanImageToVideoModel) else 0

    def conditioned_on(self, condition: ImageCondition | None):
        """The model given `condition` inside the block (a no-op on other backbones)."""
        if not isinstance(self.model, WanImageToVideoModel):
            return contextlib.nullcontext()
        return self.model.conditioned_on(condition)

    def image_conditions(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """The reference clip (1, 3, f, h, w) in [-1, 1] conditioned on its own first frame (and its last, on a
        first-and-last-frame model), as tensors by name."""
        if not self.image_conditioned:
            return {}
        first, last = (Image.fromarray(frame) for frame in tensor_to_frames(clip[:, :, [0, -1]].cpu()))
        ending = (last, clip[:, :, -1]) if self.model.takes_last_image else None
        return self.model.image_condition(first, clip[:, :, 0], clip.shape[2], ending).tensors()

    def set_image_conditions(self, conditions: dict[str, torch.Tensor]) -> None:
        self.reference_condition = ImageCondition.from_tensors(conditions, self.model.device)

    def target_condition(self, target: str) -> ImageCondition | None:
        """The condition of `target`'s image (and `last_image`) at the video's size and frames (None without an
        image)."""
        path = image_for(self.config, target) if self.image_conditioned else ""
        if not path:
            return None
        video, last = self.config.video, self.config.last_image
        image, pixels = read_image(Path(path), video.height, video.width)
        ending = read_image(Path(last), video.height, video.width) if last else None
        return self.model.image_condition(image, pixels, video.frames, ending)

    def with_first_frame(self, latents: torch.Tensor) -> torch.Tensor:
        """The current image's latent as latent frame 0 (unchanged on other backbones)."""
        if not isinstance(self.model, WanImageToVideoModel):
            return latents
        return self.model.with_first_frame(latents)
