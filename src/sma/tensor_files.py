"""Tensors saved as safetensors with the permissions of every other file sma writes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """`safetensors.torch.save_file`, readable as the umask allows: safetensors leaves its files to their owner
    alone (mode 600), so an adapter could not be shared like the videos beside it. A failed write (a full disk,
    a read-only folder) is an OSError naming the file, as Python's own writes are."""
    try:
        save_file(tensors, path, metadata=metadata)
    except SafetensorError as error:
        raise OSError(errno.EIO, str(error).removeprefix("Error while serializing: "), str(path)) from error
    os.chmod(path, 0o666 & ~umask())
