"""Find a model in diffusers format, from a local folder or a Hugging Face Hub id."""

from __future__ import annotations

from pathlib import Path

from sma.errors import SmaError

LAYOUT = "model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/"


class ModelNotFoundError(SmaError):
    """The model is neither a usable local folder nor downloadable."""


def load_component(loader, source: str, subfolder: str, **options):
    """`loader.from_pretrained(source, subfolder=...)`: the same call for a hub id and a folder.

    Weights are read from safetensors only (never unpickled) and no remote code runs.
    Failures become one ModelNotFoundError that says what was looked for and how to get it.
    """
    folder = Path(source).expanduser()
    if folder.exists() and not (folder / subfolder).is_dir():
        raise ModelNotFoundError(f"{folder} has no {subfolder}/ folder: expected the diffusers layout ({LAYOUT})")
    if not folder.exists() and (source.startswith((".", "/", "~")) or source.count("/") != 1):
        raise ModelNotFoundError(
            f"no model folder at {source!r} (and it is not a Hub id of the form owner/name): "
            f"pass a folder in diffusers layout ({LAYOUT}) or a Hub id"
        )
    location = str(folder) if folder.exists() else source
    try:
        return loader.from_pretrained(location, subfolder=subfolder, **options)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if folder.exists():
            raise ModelNotFoundError(f"cannot load {subfolder}/ from {folder}: {reason}") from error
        raise ModelNotFoundError(
            f"cannot load {subfolder}/ of {source!r} from the Hugging Face Hub ({reason}). "
            f"Download it where there is a network (`hf download {source} --local-dir DIR`) "
            "and pass the folder instead, or check the id"
        ) from error
