"""Training checkpoints in safetensors and JSON only: nothing is ever unpickled.

A checkpoint holds the trained tensors, the optimizer's per-parameter state, the step and the running numbers the
loss keeps (`sma.share`'s sums); together with per-step seeds that is everything a resumed run needs to
continue exactly.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from sma.errors import SmaError
from sma.tensor_files import save_tensors, umask

KEEP = 2  # newest checkpoints kept; older ones are removed after a successful save


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}"


def checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints of a run, oldest first (a checkpoint is complete once renamed into place)."""
    folders = sorted((Path(run_dir) / "checkpoints").glob("step-*[0-9]"))
    return [folder for folder in folders if (folder / "state.json").is_file()]


def latest_checkpoint(run_dir: Path) -> Path | None:
    complete = checkpoints(run_dir)
    return complete[-1] if complete else None


def checkpoint_step(folder: Path) -> int:
    return int(folder.name.removeprefix("step-"))


class DamagedCheckpointWarning(UserWarning):
    """A checkpoint could not be read; an older one is used."""


def save_checkpoint(
    run_dir: Path,
    step: int,
    adapter: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    running: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of `step` into a temporary folder, then rename it into place; `running`: numbers the loss
    carries from step to step (JSON)."""
    target = checkpoint_dir(run_dir, step)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(".staging-*"):  # a killed save's; the run's lock keeps other writers out
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    staging.chmod(0o777 & ~umask())  # mkdtemp's folder is its owner's alone
    state = optimizer.state_dict()
    moments = {
        f"{index}.{key}": value.detach().cpu().contiguous()
        for index, per_parameter in state["state"].items()
        for key, value in per_parameter.items()
        if isinstance(value, torch.Tensor)
    }
    try:
        save_tensors(adapter, staging / "adapter.safetensors")
        save_tensors(moments, staging / "optimizer.safetensors")
        meta = {"step": step, "param_groups": state["param_groups"], "running": running or {}}
        (staging / "state.json").write_text(json.dumps(meta))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except OSError as error:
        kept = latest_checkpoint(run_dir)
        raise SmaError(
            f"cannot write the checkpoint of step {step} ({error.strerror}: {error.filename}); "
            + (f"{kept.name} is kept: make room, then resume" if kept else "no checkpoint is kept")
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for old in sorted(target.parent.glob("step-*[0-9]"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(
    folder: Path, optimizer: torch.optim.Optimizer
) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]]:
    """Restore the optimizer in place; return the step, the adapter tensors and the running numbers (none in a
    checkpoint written before they were kept)."""
    try:
        meta = json.loads((folder / "state.json").read_text())
        adapter = load_file(folder / "adapter.safetensors")
        moments = load_file(folder / "optimizer.safetensors")
    except (OSError, ValueError, SafetensorError) as error:
        raise SmaError(f"cannot read checkpoint {folder}: {error}") from error
    per_parameter: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in moments.items():
        index, key = name.split(".", 1)
        per_parameter.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": per_parameter, "param_groups": meta["param_groups"]})
    return int(meta["step"]), adapter, meta.get("running", {})


def load_latest_checkpoint(
    run_dir: Path, optimizer: torch.optim.Optimizer
) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest readable checkpoint (step, adapter tensors and running numbers, the optimizer restored); a damaged
    one is skipped with a warning that names it. None when the run has none; an error when none can be read."""
    errors = []
    for folder in reversed(checkpoints(run_dir)):
        try:
            loaded = load_checkpoint(folder, optimizer)
        except SmaError as error:
            errors.append(str(error))
            continue
        if errors:
            warnings.warn(
                f"{'; '.join(errors)}: resuming from the older checkpoint {folder.name}",
                DamagedCheckpointWarning,
                stacklevel=2,
            )
        return loaded
    if errors:
        raise SmaError(f"{errors[0]} (and no older checkpoint can be read): set `overwrite` to start again")
    return None
