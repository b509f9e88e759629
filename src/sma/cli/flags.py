"""One table of the command line's flags that set recipe keys: it builds the parser, turns the parsed
arguments into config overrides, and phrases library messages (which name config keys) for the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from sma.backbones.show1_options import STAGES as SHOW1_STAGES
from sma.config import MOTION_LOSSES, SMA_PRESETS
from sma.errors import phrase_keys
from sma.methods import methods_help


@dataclass(frozen=True)
class Flag:
    flag: str
    key: str  # the recipe key it overrides
    help: str
    options: dict[str, Any] = field(default_factory=dict)  # more add_argument options (type, action, ...)


TRAINING_FLAGS = (
    Flag("--method", "method", f"method: {methods_help()}"),
    Flag(
        "--model",
        "model",
        "embedded or embedded-hard (the small models shipped with sma: no download, runs offline on a CPU), or a "
        "Hugging Face Hub id (downloaded on first use: needs a network), or a local folder in diffusers layout",
    ),
    Flag("--revision", "revision", "branch, tag or commit of a Hub model (default: its main branch)"),
    Flag(
        "--motion-adapter",
        "motion_adapter",
        "AnimateDiff MotionAdapter (Hub id or folder) for a Stable Diffusion 1.x --model (vmc, motiondirector)",
    ),
    Flag(
        "--prompt",
        "prompt",
        "what the reference video shows (the caption of every reference without a .txt): the methods train and "
        "invert with it, so give it; without one they condition on the empty text",
    ),
    Flag("--no-sma", "sma.enabled", "run without SMA", {"action": "store_false", "default": None}),
    Flag("--sma-levels", "sma.levels", "wavelet levels of the global SMA term", {"type": int}),
    Flag("--sma-global-weight", "sma.global_weight", "weight of SMA's global (wavelet) term", {"type": float}),
    Flag("--sma-local-weight", "sma.local_weight", "weight of SMA's local (Fourier) term", {"type": float}),
    Flag(
        "--sma-share",
        "sma.share",
        "rescale SMA every step to this share of the objective, in (0, 1) (default: the fixed weights)",
        {"type": float},
    ),
    Flag(
        "--sma-preset",
        "sma.preset",
        "named SMA settings a suite measured: low-leakage = --sma-share 0.2 with each step weighted by alpha_bar "
        "(VMC, embedded hard world: less texture leakage, no measurable motion cost; docs/results.md)",
        {"choices": tuple(SMA_PRESETS)},
    ),
    Flag(
        "--sma-scale-free",
        "sma.scale_free",
        "SMA's terms relative to the reference's own, the same at any size and frame count",
        {"action": "store_true", "default": None},
    ),
    Flag("--steps", "train.steps", "training steps", {"type": int}),
    Flag("--lr", "train.learning_rate", "learning rate", {"type": float}),
    Flag("--frames", "video.frames", "frames taken from the reference", {"type": int}),
    Flag("--height", "video.height", "pixel height", {"type": int}),
    Flag("--width", "video.width", "pixel width", {"type": int}),
    Flag("--seed", "seed", "seed of training noise and sampling", {"type": int}),
    Flag("--sampling-steps", "generate.steps", "sampling steps of each generated video", {"type": int}),
    Flag("--inversion-steps", "generate.inversion_steps", "DDIM steps inverting the reference", {"type": int}),
    Flag("--mixed-precision", "train.mixed_precision", "autocast dtype", {"choices": ("no", "fp16", "bf16")}),
    Flag(
        "--gradient-checkpointing",
        "train.gradient_checkpointing",
        "trade compute for memory",
        {"action": "store_true", "default": None},
    ),
    Flag(
        "--memory-budget-gb",
        "train.memory_budget_gb",
        "recompute in backward the fewest layers whose estimated peak fits this many GiB",
        {"type": float},
    ),
    Flag(
        "--compile",
        "train.compile",
        "compile each repeated block of the denoiser for training (torch.compile; compiled on the first step)",
        {"action": "store_true", "default": None},
    ),
    Flag(
        "--compile-sampling",
        "generate.compile",
        "compile each repeated block of the denoiser for generation",
        {"action": "store_true", "default": None},
    ),
    Flag(
        "--stages",
        "show1.stages",
        "Show-1 only: generate through its cascade up to this stage",
        {"choices": SHOW1_STAGES},
    ),
    Flag("--controlnet", "controlvideo.controlnet", "controlvideo: ControlNet-Depth, Hub id or local folder"),
    Flag("--control-video", "controlvideo.video", "controlvideo: depth maps of the reference (video or frame folder)"),
    Flag("--depth-model", "controlvideo.depth_model", "controlvideo: transformers depth model, Hub id or folder"),
    Flag(
        "--experts",
        "motionlora.experts",
        "motionlora on Wan 2.2 A14B: whose LoRA trains, each only at the timesteps it serves (high: the high-noise "
        "expert, low: the low-noise one, or both)",
        {"choices": ("high", "low", "both")},
    ),
    Flag(
        "--motion-loss",
        "flowmotion.motion_loss",
        "flowmotion: official (frame differences), sma (SMA instead) or both",
        {"choices": MOTION_LOSSES},
    ),
)
TARGET_FLAG = Flag("--target", "targets", "prompt of a video to generate (repeatable)", {"action": "append"})
IMAGE_FLAGS = (
    Flag(
        "--image",
        "image",
        "picture every target starts from, on an image-to-video model (Wan 2.2 TI2V-5B and I2V-A14B, Wan 2.1 "
        "I2V-14B): scaled "
        "to cover the video size (--height x --width) and cut at the centre (diffusers' resize_mode crop); 8-bit RGB, "
        "no alpha",
    ),
    Flag(
        "--target-image",
        "target_images",
        "instead of --image, one picture per --target, in the same order (repeatable)",
        {"action": "append"},
    ),
    Flag(
        "--last-image",
        "last_image",
        "picture every target ends on, on a first-and-last-frame model (Wan 2.1 FLF2V-14B), beside --image or "
        "--target-image; sized as they are",
    ),
)
UNTUNED_FLAG = Flag(
    "--untuned",
    "generate.untuned",
    "also sample each target from the untuned model (untuned/), in comparison.mp4 and metrics.json as a baseline",
    {"action": "store_true", "default": None},
)
# keyword arguments and recipe keys of the Python API that the command line sets with a flag or an argument
RUN_OPTIONS = {"resume": "--resume", "overwrite": "--overwrite", "targets": "--target", "references": "REFERENCE"}
RUN_OPTIONS |= {"format": "--format", "rank": "--rank"}  # sma export


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's help with "(default: X)" after each option that has a default to show (not None or False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if any(action.default is hidden for hidden in (None, False, argparse.SUPPRESS)) or "%(default)" in help_text:
            return help_text
        return f"{help_text} (default: %(default)s)"


def shared_default(key: str) -> Any:
    """The default of a shared or backbone-section recipe key ("train.steps", "show1.stages") without a recipe; None
    for a method's own keys."""
    from sma.backbones.sections import default_sections
    from sma.config import TransferConfig

    value: Any = TransferConfig(sections=default_sections()).to_dict()
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def add_flags(parser: argparse.ArgumentParser, flags: tuple[Flag, ...]) -> None:
    for flag in flags:
        default = shared_default(flag.key)
        help_text = flag.help
        if default not in (None, "", []) and not isinstance(default, bool):
            help_text += f" (without a recipe: {default})"
        options = dict(flag.options)
        takes_value = options.get("action", "append") == "append"
        if takes_value and "choices" not in options:  # named after the flag, not the recipe key
            options.setdefault("metavar", flag.flag.removeprefix("--").upper().replace("-", "_"))
        parser.add_argument(flag.flag, dest=flag.key, help=help_text, **options)


def overrides(arguments: argparse.Namespace, flags: tuple[Flag, ...]) -> dict[str, Any]:
    """Recipe keys set on the command line (flags not given are None and leave the recipe alone)."""
    return {flag.key: getattr(arguments, flag.key, None) for flag in flags}


def for_command_line(message: str) -> str:
    """A library message with its `config.key` names replaced by the flags that set them, where there are.

    A change of a key that a `store_false` flag turns off reads as the flag given or not: "`sma.enabled` (True ->
    False)" would read "--no-sma (True -> False)", backwards."""
    flags = (*TRAINING_FLAGS, TARGET_FLAG, *IMAGE_FLAGS, UNTUNED_FLAG)
    for flag in flags:
        if flag.options.get("action") == "store_false":
            for change, said in (
                ("True -> False", "not given in the run, given now"),
                ("False -> True", "given in the run, not now"),
            ):
                message = message.replace(f"`{flag.key}` ({change})", f"{flag.flag} ({said})")
    return phrase_keys(message, {flag.key: flag.flag for flag in flags} | RUN_OPTIONS)
