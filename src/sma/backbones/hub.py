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
    `subfolder` "" loads a model saved on its own (a ControlNet).
    """
    part = f"{subfolder}/ of " if subfolder else ""
    folder = local_folder(source, f"a folder in diffusers layout ({LAYOUT})")
    if folder is not None and not (folder / subfolder).is_dir():
        raise ModelNotFoundError(f"{folder} has no {subfolder}/ folder: expected the diffusers layout ({LAYOUT})")
    if folder is not None:
        try:
            return loader.from_pretrained(str(folder), subfolder=subfolder, **options)
        except (OSError, ValueError) as error:
            raise ModelNotFoundError(f"cannot load {part}{folder}: {first_line(error)}") from error
    try:  # the local Hub cache first: no network round trip when the model is already there
        return loader.from_pretrained(source, subfolder=subfolder, local_files_only=True, **options)
    except (OSError, ValueError):
        pass
    try:
        return loader.from_pretrained(source, subfolder=subfolder, **options)
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(
            f"cannot load {part}{source!r}: not in the local Hugging Face cache and not downloadable "
            f"({first_line(error)}). Download it where there is a network "
            f"(`hf download {source} --local-dir DIR`) and pass the folder, or check the id"
        ) from error


def local_folder(source: str, expected: str) -> Path | None:
    """The folder `source` names, or None when it is a Hub id (owner/name); an error when it is neither."""
    folder = Path(source).expanduser()
    if folder.exists():
        return folder
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise ModelNotFoundError(
            f"no model folder at {source!r} (and it is not a Hub id of the form owner/name): "
            f"pass {expected} or a Hub id"
        )
    return None


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
