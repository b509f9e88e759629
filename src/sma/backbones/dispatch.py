"""Pick the text-to-video backbone a model folder or Hub id needs, from its model_index.json."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sma.backbones.hub import ModelNotFoundError, local_folder
from sma.errors import SmaError


def load_text_to_video(source: str, device: str | torch.device = "cpu", revision: str | None = None):
    """Show-1 base (`TextToVideoIFPipeline`) or a diffusers UNet3D model (ZeroScope, ModelScope)."""
    from sma.backbones.show1 import PIPELINE, Show1Model
    from sma.backbones.text_to_video import TextToVideoModel

    index = model_index(source, revision)
    unet_library = (index.get("unet") or [""])[0]
    if unet_library.startswith("showone"):
        if index.get("_class_name") != PIPELINE:
            raise SmaError(
                f"{source} is a Show-1 {index.get('_class_name')}: only the base stage ({PIPELINE}, "
                "e.g. showlab/show-1-base) is supported"
            )
        return Show1Model.from_pretrained(source, device=device, revision=revision)
    return TextToVideoModel.from_pretrained(source, device=device, revision=revision)


def model_index(source: str, revision: str | None = None) -> dict:
    """The model's model_index.json ({} when it cannot be read: loading the model then says why)."""
    try:
        folder = local_folder(source, "a model folder")
    except ModelNotFoundError:
        return {}
    if folder is not None:
        path = folder / "model_index.json"
        return json.loads(path.read_text()) if path.is_file() else {}
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    for local_only in (True, False):  # the local Hub cache first, as for the components
        try:
            path = hf_hub_download(source, "model_index.json", revision=revision, local_files_only=local_only)
        except (OSError, EntryNotFoundError, ValueError):  # offline, missing, private: loading says which
            continue
        return json.loads(Path(path).read_text())
    return {}
