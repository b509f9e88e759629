"""The training loop, on accelerate: mixed precision, accumulation, data parallel, resumable.

Every micro-step draws its noise and timesteps from a generator seeded by (seed, step,
micro-step, process), and, with several references, which reference it trains on from
`reference_draw`, so a run resumed from a checkpoint continues exactly as if it had never
stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from sma.checkpoints import load_latest_checkpoint, save_checkpoint
from sma.config import TrainConfig
from sma.errors import SmaError
from sma.memory_budget import CheckpointingPlan, checkpoint_within_budget, state_kept
from sma.methods.base import TrainedMethod
from sma.phases import Phases
from sma.progress import bar, report, stop_requested
from sma.video.atomic import atomic_output

HALF_PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TrainingDiverged(SmaError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(SmaError):
    """Ctrl-C or SIGTERM: the run stopped after saving a checkpoint."""


def make_optimizer(parameters: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.use_8bit_adam:
        try:
            import bitsandbytes
        except ImportError as error:
            raise SmaError("use_8bit_adam needs bitsandbytes and a CUDA GPU: pip install bitsandbytes") from error
        return bitsandbytes.optim.AdamW8bit(parameters, lr=config.learning_rate)
    return torch.optim.AdamW(parameters, lr=config.learning_rate)


def average_gradients(accelerator: Accelerator, parameters: list[torch.nn.Parameter]) -> None:
    """Mean of the gradients over processes, in one all-reduce.

    Data parallel without DDP: MotionDirector runs two UNet forwards per step (spatial and
    temporal paths), which DDP's reducer does not allow; averaging the few trained
    gradients by hand works for every method.
    """
    if accelerator.num_processes == 1:
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    flat = torch.cat([parameter.grad.flatten() for parameter in parameters])
    flat = accelerator.reduce(flat, reduction="mean")
    for parameter, grad in zip(parameters, flat.split([p.numel() for p in parameters]), strict=True):
        parameter.grad.copy_(grad.view_as(parameter))


def draw_index(step: int, micro_step: int, accumulation: int, process: int, processes: int) -> int:
    """The number of a micro-step's draw over the whole run, all processes together."""
    return (step * accumulation + micro_step) * processes + process


def step_seed(seed: int, step: int, micro_step: int, accumulation: int, process: int, processes: int) -> int:
    return seed * 1_000_003 + draw_index(step, micro_step, accumulation, process, processes)


def reference_draw(seed: int, draw: int, count: int) -> int:
    """Which of `count` references the `draw`-th micro-step trains on.

    Draws come in epochs of `count`: each epoch is a permutation of the references from numpy's
    generator seeded with (seed, epoch), so every reference is seen once per epoch (as the
    official MotionDirector's unshuffled loader does), in an order the seed reproduces, and a
    resumed run needs no state to continue it.
    """
    if count == 1:
        return 0
    epoch, position = divmod(draw, count)
    return int(np.random.default_rng((seed % 2**63, epoch)).permutation(count)[position])


class _StopRequests:
    """Turns the first Ctrl-C or SIGTERM, or a stop asked through `sma.progress.watch`, into a flag the loop
    checks between steps."""

    def __init__(self) -> None:
        self._signalled = False
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self._signalled or stop_requested()

    def __enter__(self):
        for kind in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: signals stay as they are
                self._previous[kind] = signal.signal(kind, self._handle)
        return self

    def _handle(self, kind, _frame) -> None:
        self._signalled = True
        signal.signal(kind, self._previous.get(kind, signal.SIG_DFL))  # a second one acts at once

    def __exit__(self, *_exc) -> None:
        for kind, handler in self._previous.items():
            signal.signal(kind, handler)


def _read_losses(path: Path, before_step: int) -> list[dict[str, float]]:
    """The logged steps before `before_step`; a line a killed run left unfinished is dropped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return [record for record in records if isinstance(record, dict) and record.get("step", before_step) < before_step]


def train(
    accelerator: Accelerator,
    method: TrainedMethod,
    latents: torch.Tensor | list[torch.Tensor],
    text: torch.Tensor | list[torch.Tensor],
    config: TrainConfig,
    seed: int,
    run_dir: Path,
    resume: bool = False,
    phases: Phases | None = None,
    kept: bool = True,
    conditions: list[dict[str, torch.Tensor]] | None = None,
) -> list[dict[str, float]]:
    """Train the method's parameters; returns one record of loss terms per step.

    `latents` and `text` are those of one reference, or lists with one entry per reference (and
    `conditions`, what `condition_on` gave for each): each micro-step trains on one of them,
    chosen by `reference_draw`, and the record of a step lists the references it drew.
    `kept` False: the run folder is discarded on failure (it replaces another run), so messages offer no checkpoint.
    """
    latents = latents if isinstance(latents, list) else [latents]
    text = text if isinstance(text, list) else [text]
    if len(text) != len(latents) or (conditions is not None and len(conditions) != len(latents)):
        raise ValueError(f"{len(latents)} latents need as many texts and conditions, got {len(text)}")
    parameters, optimizer, start = _start(accelerator, method, config, run_dir, resume, seed)
    if config.budgeted:
        first = (latents[0], text[0], None if conditions is None else conditions[0])
        method.checkpointing_plan = plan_layers(accelerator, method, config, parameters, first, seed)
    if config.compile:
        method.model.compile_layers()
    unet = method.model.unet
    loss_log = Path(run_dir) / "losses.jsonl"
    history = _restart_loss_log(loss_log, start, accelerator.is_main_process)
    last_saved = start
    progress = bar(
        total=config.steps, initial=start, desc=f"train {method.name}", disable=not accelerator.is_local_main_process
    )
    with progress as shown, _StopRequests() as stop, (phases or Phases())("train", steps=config.steps - start):
        for step in range(start, config.steps):
            terms, drawn = {}, []
            for micro_step in range(config.gradient_accumulation):
                accumulation = config.gradient_accumulation
                index, seed_here = _draw(accelerator, seed, step, micro_step, accumulation, len(latents))
                drawn.append(index)
                if conditions is not None:
                    method.set_conditions(conditions[index])
                generator = torch.Generator(device=latents[index].device).manual_seed(seed_here)
                torch.manual_seed(seed_here)  # dropout layers draw from the global generator
                with accelerator.accumulate(unet), accelerator.autocast():
                    terms = method.loss(latents[index], text[index], generator)
                    loss = terms["loss"]
                    if not math.isfinite(loss.item()):
                        kept_here = _kept(kept, last_saved, run_dir)
                        raise TrainingDiverged(
                            f"the loss became {loss.item()} at step {step + 1} ({kept_here}): "
                            f"{divergence_advice(accelerator.mixed_precision)}"
                        )
                    _apply_gradients(accelerator, method, terms, parameters, optimizer, config.max_grad_norm)
            losses = {name: round(value.item(), 6) for name, value in terms.items()}
            record = {"step": step, **losses, **({"references": drawn} if len(latents) > 1 else {})}
            history.append(record)
            shown.set_postfix({name: f"{value:.4f}" for name, value in losses.items()}, refresh=False)
            shown.update(1)  # after the losses: a line written to a log carries them
            done = step + 1
            report("train", done, config.steps, {name: value for name, value in record.items() if name != "step"})
            if accelerator.is_main_process:
                with loss_log.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
            if done % config.checkpoint_every == 0 or stop.requested or done == config.steps:  # the last: to extend
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    save_checkpoint(run_dir, done, method.adapter_state(), optimizer, _running(method))
                last_saved = done
            if stop.requested and done < config.steps:
                advice = ": continue with `resume`" if kept else ""
                raise TrainingInterrupted(
                    f"stopped at step {done} of {config.steps} ({_kept(kept, last_saved, run_dir)}){advice}"
                )
    unet.eval()
    return history


def _draw(
    accelerator: Accelerator, seed: int, step: int, micro_step: int, accumulation: int, references: int
) -> tuple[int, int]:
    """Which reference a micro-step trains on and the seed of its noise, from (seed, step, micro-step, process)
    alone, so that a resumed run draws as if it had never stopped."""
    where = (step, micro_step, accumulation, accelerator.process_index)
    index = reference_draw(seed, draw_index(*where, accelerator.num_processes), references)
    return index, step_seed(seed, *where, accelerator.num_processes)


def _start(
    accelerator: Accelerator, method: TrainedMethod, config: TrainConfig, run_dir: Path, resume: bool, seed: int
) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer, int]:
    """The trained parameters, in a model set up for training (frozen weights in the half precision, gradient
    checkpointing as asked), their optimizer, and the step to start from: 0, or the latest checkpoint's with
    `resume` (its adapter and optimizer state loaded).

    New parameters (LoRA) are drawn from `seed`, not from whatever the global generator holds after the work before
    (a test, another benchmark cell), so that the same run gives the same adapter in any process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        parameters = list(method.prepare().values())
    if accelerator.mixed_precision in HALF_PRECISIONS:
        method.model.cast_frozen(HALF_PRECISIONS[accelerator.mixed_precision])
    if config.gradient_checkpointing is True and not config.budgeted:
        method.model.enable_gradient_checkpointing()
    method.model.unet.train()
    optimizer = accelerator.prepare(make_optimizer(parameters, config))
    start = 0
    if resume and (loaded := load_latest_checkpoint(run_dir, optimizer)) is not None:
        start, adapter, running = loaded
        method.load_adapter(adapter)
        if method.sma_share is not None and "sma_share" in running:
            method.sma_share.restore(running["sma_share"])
    return parameters, optimizer, start


def _running(method: TrainedMethod) -> dict[str, dict]:
    """What the loss carries from step to step, for the checkpoint: `sma.share`'s sums."""
    return {} if method.sma_share is None else {"sma_share": method.sma_share.state()}


def plan_layers(
    accelerator: Accelerator,
    method: TrainedMethod,
    config: TrainConfig,
    parameters: list[torch.nn.Parameter],
    first: tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor] | None],
    seed: int,
) -> CheckpointingPlan | None:
    """Checkpoint the fewest layers that fit `train.memory_budget_gb`, from a measuring forward of the loss on the
    first reference (`sma.memory_budget`); None, and nothing checkpointed, without a budget (on the CPU)."""
    latents, text, conditions = first
    if conditions is not None:
        method.set_conditions(conditions)

    def forward() -> None:
        generator = torch.Generator(device=latents.device).manual_seed(seed)
        with accelerator.autocast(), state_kept(method, "sma_share"):
            method.loss(latents, text, generator)

    optimizer = "adamw8bit" if config.use_8bit_adam else "adamw"
    return checkpoint_within_budget(
        method.model, config.memory_budget_gb, forward, parameters, optimizer, "train.memory_budget_gb"
    )


def _restart_loss_log(loss_log: Path, start: int, main: bool) -> list[dict[str, float]]:
    """The records of the steps before `start`, and the log rewritten to hold only those (by the main process):
    steps a resumed run trains again are logged once."""
    history = _read_losses(loss_log, start)
    if main:
        with atomic_output(loss_log, overwrite=True) as temporary:
            temporary.write_text("".join(json.dumps(record) + "\n" for record in history))
    return history


def _apply_gradients(
    accelerator: Accelerator,
    method: TrainedMethod,
    terms: dict[str, torch.Tensor],
    parameters: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    max_grad_norm: float,
) -> None:
    """Backward of each of the method's loss groups into its parameters; on a step that syncs, the gradients
    averaged over processes and clipped; then the optimizer's step (accelerate skips it between syncs)."""
    groups = method.loss_groups(terms)
    for index, (group_loss, group_parameters) in enumerate(groups):
        retain = index + 1 < len(groups)  # later groups may share this graph
        accelerator.backward(group_loss, inputs=group_parameters, retain_graph=retain)
    if accelerator.sync_gradients:
        average_gradients(accelerator, parameters)
        if max_grad_norm > 0:  # the accelerator's: it unscales fp16 gradients first
            accelerator.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad()


def divergence_advice(mixed_precision: str) -> str:
    """What to change after a NaN loss: the precision only where half precision was on."""
    others = " or ".join(name for name in ("bf16", "no") if name != mixed_precision)
    if mixed_precision == "no":
        return "lower `train.learning_rate`"
    return f"lower `train.learning_rate` or set `train.mixed_precision` to {others}"


def _kept(kept: bool, last_saved: int, run_dir: Path) -> str:
    if not kept:
        return "nothing is kept: the run this one was to replace is left as it was"
    if last_saved:
        return f"the last good checkpoint is step {last_saved}, in {run_dir}/checkpoints"
    return "no checkpoint yet"
