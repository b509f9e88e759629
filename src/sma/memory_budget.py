"""Gradient checkpointing within a memory budget: recompute the fewest layers whose activations must go.

A measuring forward (the method's loss once, before training) counts the bytes each checkpointable layer saves
for backward, through `torch.autograd.graph.saved_tensors_hooks`, on any device; the saved tensors are counted
and dropped, so that forward holds one layer's activations at a time and cannot run backward. The plan then
checkpoints layers, those that free the most first, until the estimated peak fits:

    weights and buffers + gradients and optimizer state of the trained parameters
    + activations saved outside the layers + those of the layers kept
    + the inputs of the checkpointed layers (what recomputation starts from) + the largest checkpointed layer's
      activations (rebuilt in backward, one at a time).

An estimate, not a measurement: allocator caching and kernel workspaces come on top, hence the margin a
budget taken from the card leaves.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
from accelerate import PartialState
from tqdm.auto import tqdm

GIB = 2**30
CARD_MARGIN = 0.1  # share of the card's memory a default budget leaves free (allocator cache, workspaces)
OPTIMIZER_STATE_BYTES = {"adamw": 8, "adamw8bit": 2}  # per trained parameter: AdamW's two moments


class MemoryBudgetWarning(UserWarning):
    """Even with every layer recomputed, the estimated peak is over the memory budget."""


@dataclass
class LayerActivations:
    saved: int = 0  # bytes the layer's forwards in one step save for backward
    inputs: int = 0  # bytes of its tensor inputs: what a checkpointed layer keeps


@dataclass
class CheckpointingPlan:
    """Which layers are recomputed and the estimate that chose them, as metrics.json records it."""

    budget_gib: float
    estimate_gib: float  # peak with this plan
    unplanned_gib: float  # peak with no layer checkpointed
    static_gib: float  # weights, gradients and optimizer state
    checkpointed: list[str]
    layers: int  # checkpointable layers in all
    fits: bool

    def summary(self) -> dict:
        return {key: round(value, 3) if isinstance(value, float) else value for key, value in asdict(self).items()}


def tensor_bytes(value) -> int:
    return sum(item.nbytes for item in _tensors(value))


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in _tensors(item)]
    if isinstance(value, dict):
        return [tensor for item in value.values() for tensor in _tensors(item)]
    return []


def measure_activations(
    layers: dict[str, torch.nn.Module], forward: Callable[[], object], weights: Iterable[torch.Tensor]
) -> tuple[dict[str, LayerActivations], int]:
    """Bytes saved for backward by each layer during `forward()`, and those saved outside every layer.

    A storage is counted once while a tensor on it lives: a layer's saved tensors are kept until the layer
    returns (one storage saved by several operations is one), and its output, saved again by the next layer, is
    not counted twice. The `weights`' own storages are not activations and are left out."""
    measured = {name: LayerActivations() for name in layers}
    excluded = {weight.untyped_storage().data_ptr() for weight in weights}
    seen: dict[int, weakref.ref] = {}  # storages counted, while a tensor on them lives
    running: list[list[torch.Tensor]] = []  # per layer being run: its saved tensors, kept while it runs
    current: list[str] = []
    outside = 0

    def pack(tensor: torch.Tensor) -> None:
        nonlocal outside
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer in excluded or pointer in seen:
            return
        seen[pointer] = weakref.ref(tensor, lambda _dead, pointer=pointer: seen.pop(pointer, None))
        if current:
            running[-1].append(tensor)
            measured[current[-1]].saved += storage.nbytes()
        else:
            outside += storage.nbytes()

    def unpack(_packed: None) -> torch.Tensor:
        raise RuntimeError("a measuring forward keeps no activations: it cannot run backward")

    def enter(name: str):
        def hook(_module, args, kwargs):
            measured[name].inputs += tensor_bytes(args) + tensor_bytes(kwargs)
            current.append(name)
            running.append([])

        return hook

    def leave(_module, _args, _kwargs, _output) -> None:
        current.pop()
        running.pop()

    handles = []
    for name, layer in layers.items():
        handles.append(layer.register_forward_pre_hook(enter(name), with_kwargs=True))
        # always: a forward stopped by an exception (DMT's features end the UNet early) leaves the layer too
        handles.append(layer.register_forward_hook(leave, with_kwargs=True, always_call=True))
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            forward()
    finally:
        for handle in handles:
            handle.remove()
    return measured, outside


def static_bytes(networks: Iterable[torch.nn.Module], trained: Iterable[torch.nn.Parameter], optimizer: str) -> int:
    """Weights and buffers of the networks, and for each trained parameter its gradient and optimizer state."""
    held = sum(tensor.nbytes for network in networks for tensor in (*network.parameters(), *network.buffers()))
    per_trained = sum(parameter.nbytes + parameter.numel() * OPTIMIZER_STATE_BYTES[optimizer] for parameter in trained)
    return held + per_trained


def estimate(static: int, outside: int, activations: dict[str, LayerActivations], checkpointed: set[str]) -> int:
    """The peak the module docstring describes, in bytes."""
    kept = sum(layer.saved for name, layer in activations.items() if name not in checkpointed)
    inputs = sum(activations[name].inputs for name in checkpointed)
    rebuilt = max((activations[name].saved for name in checkpointed), default=0)
    return static + outside + kept + inputs + rebuilt


def plan_checkpointing(
    budget: int, static: int, outside: int, activations: dict[str, LayerActivations]
) -> CheckpointingPlan:
    """The fewest layers to checkpoint, those that free the most first, for the estimate to fit `budget`; every
    layer (and `fits` False) when even that does not."""
    checkpointed: list[str] = []
    order = sorted(activations, key=lambda name: activations[name].inputs - activations[name].saved)
    for name in order:
        if estimate(static, outside, activations, set(checkpointed)) <= budget:
            break
        checkpointed.append(name)
    peak = estimate(static, outside, activations, set(checkpointed))
    return CheckpointingPlan(
        budget_gib=budget / GIB,
        estimate_gib=peak / GIB,
        unplanned_gib=estimate(static, outside, activations, set()) / GIB,
        static_gib=static / GIB,
        checkpointed=checkpointed,
        layers=len(activations),
        fits=peak <= budget,
    )


def budget_bytes(budget_gb: float | None, device: torch.device) -> int | None:
    """`train.memory_budget_gb` in bytes; without one, a CUDA card's memory less `CARD_MARGIN`, and no budget
    elsewhere (None)."""
    if budget_gb is not None:
        return int(budget_gb * GIB)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * (1 - CARD_MARGIN))
    return None


@contextlib.contextmanager
def state_kept(owner: object, name: str):
    """`owner.name` put back as it was on leaving: a measuring forward must not move state the loss keeps."""
    saved = copy.deepcopy(getattr(owner, name))
    try:
        yield
    finally:
        setattr(owner, name, saved)


def weights_and_buffers(networks: Iterable[torch.nn.Module]) -> list[torch.Tensor]:
    return [tensor for network in networks for tensor in (*network.parameters(), *network.buffers())]


def announce(plan: CheckpointingPlan, budget_key: str, printed: bool = True) -> None:
    """One line about the plan: a `MemoryBudgetWarning` when even every layer recomputed does not fit, else
    (when `printed`) what is recomputed."""
    said = f"estimated peak {plan.estimate_gib:.2f} GiB (weights and optimizer {plan.static_gib:.2f} GiB)"
    if not plan.fits:
        warnings.warn(
            f"the memory budget of {plan.budget_gib:.2f} GiB cannot be met: every layer is recomputed and the {said}; "
            f"raise `{budget_key}` or lower the frames or the size",
            MemoryBudgetWarning,
            stacklevel=3,
        )
    elif printed:
        tqdm.write(
            f"memory budget {plan.budget_gib:.2f} GiB: {len(plan.checkpointed)} of {plan.layers} layers recomputed "
            f"in backward, {said}; none recomputed: {plan.unplanned_gib:.2f} GiB"
        )


def checkpoint_within_budget(
    model, budget_gb: float | None, forward: Callable[[], object], trained: list[torch.Tensor], optimizer: str, key: str
) -> CheckpointingPlan | None:
    """Measure `forward` (the loss a step runs) on `model` (a `LatentVideoModel`), plan for the budget (`key`'s
    value `budget_gb`; see `budget_bytes`), checkpoint the planned layers and say so; None without a budget."""
    budget = budget_bytes(budget_gb, model.device)
    if budget is None:
        return None
    weights = weights_and_buffers(model.networks())
    activations, outside = measure_activations(model.checkpointable_layers(), forward, weights)
    on_device = [network for network in model.networks() if network.device == model.device]
    plan = plan_checkpointing(budget, static_bytes(on_device, trained, optimizer), outside, activations)
    model.checkpoint_some_layers(plan.checkpointed)
    announce(plan, key, printed=PartialState().is_main_process)
    return plan
