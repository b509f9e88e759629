"""Find a model in diffusers format, from a local folder or a Hugging Face Hub id, and read its model_index.json."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch

from sma.errors import SmaError

LAYOUT = "model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/"
ACCEPTED = "safetensors or PyTorch .bin weights, plain or as the fp16 variant, in one file or sharded with an index"
WEIGHT_FILE = re.compile(
    r"""[^.]+                                       # model, pytorch_model, diffusion_pytorch_model (or a shard of one)
        (?:\.(?P<variant>[^.-]+)(?:-\d+-of-\d+)?)?  # .fp16 (diffusers' variant shards number after it)
        \.(?P<format>safetensors|bin)
        (?:\.index(?:\.(?P<index_variant>[^.]+))?\.json)?  # the index of sharded weights
    """,
    re.VERBOSE,
)


class ModelNotFoundError(SmaError):
    """The model is neither a usable local folder nor downloadable."""


def load_component(loader, source: str, subfolder: str, revision: str | None = None, **options):
    """`loader.from_pretrained(source, subfolder=...)`: the same call for a hub id and a folder.

    Networks load in float32 from the weights found: safetensors before .bin, full precision
    before the fp16 variant. diffusers and transformers read .bin with
    `torch.load(weights_only=True)`, which refuses pickles of anything but tensors, and no
    remote code runs. `revision` (branch, tag or commit) applies to Hub ids; a folder has none.
    Failures become one ModelNotFoundError that says what was found and what to do.
    `subfolder` "" loads a model saved on its own (a ControlNet).
    """
    folder = local_folder(source, f"a folder in diffusers layout ({LAYOUT})")
    if folder is not None:
        return _load_folder(loader, folder, subfolder, options)
    cache_error = None
    snapshot = cached_snapshot(source, revision)
    if snapshot is not None:  # the local Hub cache first: no network round trip when the model is already there
        try:
            return _load_folder(loader, snapshot, subfolder, options)
        except ModelNotFoundError as error:  # an incomplete snapshot: the Hub may have the rest
            cache_error = error
    at = f" at revision {revision!r}" if revision else ""
    if not hub_reachable():
        option = f" --revision {revision}" if revision else ""
        raise cache_error or ModelNotFoundError(
            f"{source!r}{at} is not in the local Hugging Face cache and the Hub cannot be reached: download it "
            f"where there is a network (`hf download {source}{option} --local-dir DIR`) and pass the folder, "
            "or check the id"
        )
    from huggingface_hub import HfApi

    try:
        names = HfApi().list_repo_files(source, revision=revision)
    except Exception as error:  # huggingface_hub raises many kinds: unknown repo or revision, gated, HTTP
        raise ModelNotFoundError(f"cannot load {source!r}{at} from the Hub: {first_line(error)}") from error
    prefix = f"{subfolder}/" if subfolder else ""
    names = [name[len(prefix) :] for name in names if name.startswith(prefix) and "/" not in name[len(prefix) :]]
    return _load(loader, source, subfolder, names, {"revision": revision, **options})


def _load_folder(loader, folder: Path, subfolder: str, options: dict):
    if not (folder / subfolder).is_dir():
        raise ModelNotFoundError(f"{folder} has no {subfolder}/ folder: expected the diffusers layout ({LAYOUT})")
    return _load(loader, str(folder), subfolder, [path.name for path in (folder / subfolder).iterdir()], options)


def _load(loader, source: str, subfolder: str, names: list[str], options: dict):
    """`from_pretrained` with the weights chosen from `names`, the files of the component's folder."""
    from diffusers import ModelMixin
    from transformers import PreTrainedModel

    where = f"{subfolder}/ of {source}" if subfolder else source
    if issubclass(loader, ModelMixin):
        options = {**weights_options(names, where), **options}
    elif issubclass(loader, PreTrainedModel):  # transformers 5 would take the config's dtype (float16 for ZeroScope)
        options = {**weights_options(names, where), "dtype": torch.float32, **no_hub_kernels(loader), **options}
    try:
        with _loading_bars_off_in_logs():
            return loader.from_pretrained(source, subfolder=subfolder, **options)
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        if _refused_pickle(error):
            pickles = ", ".join(sorted(name for name in names if name.endswith(".bin")))
            raise ModelNotFoundError(
                f"cannot load {where}: torch.load(weights_only=True) refuses {pickles} (a pickle of more than "
                "tensors, which could run code) and sma never unpickles anything else; get safetensors weights"
            ) from error
        raise ModelNotFoundError(f"cannot load {where}: {first_line(error)}") from error


@contextlib.contextmanager
def _loading_bars_off_in_logs():
    """transformers' and diffusers' loading bars off while stderr is a file or pipe: they would write carriage-return
    frames into the log (sma's own bars write lines there, `sma.progress.bar`)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from sma.progress import is_terminal

    libraries = [diffusers_logging, transformers_logging]
    shown = [library.is_progress_bar_enabled() for library in libraries]
    if not is_terminal(sys.stderr):
        for library in libraries:
            library.disable_progress_bar()
    try:
        yield
    finally:
        for library, enabled in zip(libraries, shown, strict=True):
            (library.enable_progress_bar if enabled else library.disable_progress_bar)()


def no_hub_kernels(loader) -> dict:
    """`use_kernels=False` where transformers knows it: since 5.x it defaults to swapping layers for compiled
    kernels fetched from the Hub (code sma does not run) and re-does it on every `.train()`/`.eval()`, which
    fails on the `meta` device. Older releases have neither the option nor the swap."""
    return {"use_kernels": False} if hasattr(loader, "set_use_kernels") else {}


def weights_options(names: list[str], where: str) -> dict:
    """`use_safetensors` and `variant` for `from_pretrained`, from the file names of a model's folder."""
    found = set(map(weights_kind, names))
    for variant in (None, "fp16"):
        for suffix in ("safetensors", "bin"):
            if (variant, suffix) in found:
                return {"use_safetensors": suffix == "safetensors", "variant": variant}
    listing = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "") if names else "nothing"
    raise ModelNotFoundError(
        f"cannot load {where}: no weights sma reads there (found {listing}); it reads {ACCEPTED}: "
        "convert the model to them with diffusers or transformers (save_pretrained)"
    )


def weights_kind(name: str) -> tuple[str | None, str] | None:
    """(variant, "safetensors" or "bin") of a weight file or index name, None for any other file."""
    match = WEIGHT_FILE.fullmatch(name)
    return (match["variant"] or match["index_variant"], match["format"]) if match else None


def _refused_pickle(error: BaseException | None) -> bool:
    """Whether torch.load(weights_only=True) refused a pickle somewhere behind `error`
    (diffusers wraps the refusal in an OSError, transformers lets it through)."""
    while error is not None:
        if isinstance(error, pickle.UnpicklingError):
            return True
        error = error.__cause__ or error.__context__
    return False


def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The folder of `repo_id` at `revision` (a branch, tag or commit) in the local Hub cache, if there is one."""
    from huggingface_hub import constants

    storage = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    revision = revision or "main"
    ref = storage / "refs" / revision
    snapshot = storage / "snapshots" / (ref.read_text().strip() if ref.is_file() else revision)
    return snapshot if snapshot.is_dir() else None


def hub_reachable(timeout: float = 3.0) -> bool:
    """False offline, or where a quick connection test fails, so that no call waits through the Hub client's retries."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or any(
        os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    ):
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


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


def model_index(source: str, revision: str | None = None) -> dict:
    """The model's model_index.json ({} when it cannot be read: loading the model then says why)."""
    return model_json(source, "model_index.json", revision)


def model_json(source: str, name: str, revision: str | None = None) -> dict:
    """A JSON file of the model (`name`: its path in the folder, e.g. transformer/config.json), read before anything
    loads; {} when it cannot be read (loading the model then says why)."""
    try:
        folder = local_folder(source, "a model folder")
    except ModelNotFoundError:
        return {}
    if folder is not None:
        path = folder / name
        return json.loads(path.read_text()) if path.is_file() else {}
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    for local_only in (True, False):  # the local Hub cache first, as for the components
        try:
            path = hf_hub_download(source, name, revision=revision, local_files_only=local_only)
        except (OSError, EntryNotFoundError, ValueError):  # offline, missing, private: loading says which
            continue
        return json.loads(Path(path).read_text())
    return {}
