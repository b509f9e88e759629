"""A press of Run: the page's fields -> the runs' configurations (as `sma transfer` builds them from flags and a
recipe), and `Admission`, the one way a job gets to run (one at a time, a few waiting, each visitor one place)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sma.config import TransferConfig
from sma.errors import SmaError, phrase_keys
from sma.methods import method_class
from sma.run_folder import slug

TOY_WORLD = "toy world (embedded model)"  # the recipe choice that sets up runs as `sma demo` does
TOY_SETTINGS = {"train.steps": 150, "seed": 0, "generate.steps": 20}  # the demo's, where the page's fields are empty
# the page's fields by the config key they set, in the order the run handler takes them
FIELDS = {
    "recipe": "Recipe",
    "method": "Method",
    "model": "Model",
    "prompt": "Reference prompt",
    "targets": "Target prompts",
    "image": "Start image",
    "sma.enabled": "SMA",
    "compare": "Also without SMA",
    "generate.untuned": "Untuned baseline",
    "sma.global_weight": "SMA global weight",
    "sma.local_weight": "SMA local weight",
    "train.steps": "Training steps",
    "video.frames": "Frames",
    "video.height": "Height",
    "video.width": "Width",
    "generate.steps": "Sampling steps",
    "generate.inversion_steps": "Inversion steps",
    "seed": "Seed",
    "name": "Run name",
    "resume": "Resume",
}
NUMBERS = ("sma.global_weight", "sma.local_weight", "video.frames", "video.height", "video.width")
NUMBERS += ("generate.inversion_steps",)  # set as they are; an empty one leaves the recipe's value
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")  # what the page takes as a reference
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")  # and as a start image


def for_page(message: str) -> str:
    """A library message with its config keys named by the page's fields."""
    return phrase_keys(message, {key: f"'{label}'" for key, label in FIELDS.items()} | {"overwrite": "a new Run name"})


def config_from(form: dict[str, Any]) -> TransferConfig:
    """The run's configuration from the page's fields, as `sma transfer` builds it from flags and a recipe. An empty
    field (None: a number left blank, a field of the closed Settings the page never drew) keeps the recipe's value."""
    from sma.embedded import embedded_model
    from sma.embedded.world import run_config
    from sma.recipes import load_config

    targets = [line.strip() for line in (form["targets"] or "").splitlines() if line.strip()]
    overrides = {key: _number(form[key]) for key in NUMBERS} | {"generate.untuned": bool(form["generate.untuned"])}
    if form.get("image"):  # an uploaded picture: every target starts from it (image-to-video models)
        overrides["image"] = form["image"]
    model = (form["model"] or "").strip() or embedded_model()
    if form["recipe"] == TOY_WORLD:
        given = {key: _number(form[key]) for key in TOY_SETTINGS}
        steps, seed, sampling = (TOY_SETTINGS[key] if given[key] is None else given[key] for key in TOY_SETTINGS)
        return run_config(
            model,
            form["prompt"] or "",
            targets,
            method=form["method"],
            steps=steps,
            seed=seed,
            sma=bool(form["sma.enabled"]),
            sampling_steps=sampling,
            guidance_scale=7.5,
            overrides=overrides,
        )
    method = method_class(form["method"])
    overrides |= {
        "method": form["method"],
        "model": model,
        "prompt": form["prompt"] or "",
        "targets": targets,
        "seed": _number(form["seed"]),
        **method.sma_switch(bool(form["sma.enabled"])),
        "generate.steps": _number(form["generate.steps"]),
    }
    if method.trains:
        overrides["train.steps"] = _number(form["train.steps"])
    return load_config(form["recipe"], overrides)


def _number(value: float | None) -> int | float | None:
    """Gradio's numbers are floats; a whole one is the integer the recipe key takes (None: the field is empty)."""
    if value is None or isinstance(value, bool):
        return value
    return int(value) if float(value).is_integer() else value


def recipe_defaults(recipe: str, method: str) -> TransferConfig:
    """What the fields show for a recipe (the toy world's: the demo's settings for `method`)."""
    from sma.embedded import embedded_model
    from sma.embedded.world import run_config
    from sma.recipes import load_config

    if recipe == TOY_WORLD:
        steps, seed, sampling = TOY_SETTINGS.values()
        return run_config(
            embedded_model(), "", [], method=method, steps=steps, seed=seed, sampling_steps=sampling, guidance_scale=7.5
        )
    return load_config(recipe)


@dataclass
class Job:
    """One press of Run: the configuration of each variant and where they go."""

    folder: Path
    reference: Path
    configs: dict[str, TransferConfig]
    resume: bool


def make_job(form: dict[str, Any], reference: str | None, out: Path) -> Job:
    """The job of a press of Run; an upload of the wrong kind and a run name are checked here, where the page's API
    delivers them too (a run name is a slug: it never leaves `out`)."""
    if not reference:
        raise SmaError("give a reference video: upload one or pick an example")
    uploads = ((reference, VIDEO_SUFFIXES, "reference"), (form.get("image"), IMAGE_SUFFIXES, "start image"))
    for path, suffixes, what in uploads:
        if path and not path.lower().endswith(suffixes):
            raise SmaError(f"the {what} must be a {suffixes[0][1:]} ({', '.join(suffixes)}), not {Path(path).name}")
    config = config_from(form)
    with_sma = method_class(config.method).uses_sma(config)
    configs = {"sma" if with_sma else "nosma": config}
    if with_sma and form["compare"]:
        without = config_from(form | {"sma.enabled": False})
        without.generate.untuned = False  # the same samples as the first variant's: SMA plays no part in them
        configs["nosma"] = without
    given = (form["name"] or "").strip()  # None where the page never drew the closed Settings
    name = slug(given, 60) if given else None
    if form["resume"] and not name:
        raise SmaError("give the Run name of the run to resume")
    name = name or time.strftime("%Y%m%d-%H%M%S-") + slug(config.targets[0] if config.targets else "run", 30)
    folder = out / name
    if not form["resume"] and folder.exists():
        raise SmaError(f"{folder} already exists: choose another Run name, or tick Resume to continue it")
    return Job(folder, Path(reference), configs, bool(form["resume"]))


class Admission:
    """The one way a job gets to run, whoever calls the job's function: one job runs at a time, `max_queue` wait
    behind it in the order they came, a visitor (a page's session) holds one place at most, and a place is held
    only while its job's call lasts (or until the visitor leaves the page)."""

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self.running: tuple[str, str] | None = None  # (visitor, job name)
        self.waiting: list[tuple[str, str]] = []
        self.changed = threading.Condition()

    def enter(self, visitor: str, name: str) -> str | None:
        """A place for `visitor`'s job `name`; else why not (one line for the page)."""
        with self.changed:
            if visitor in self.holders():
                return "**Refused:** this page already has a job running or waiting; cancel it first."
            if self.running and len(self.waiting) >= self.max_queue:
                waiting = len(self.waiting)
                return f"**Refused:** the queue is full ({waiting} waiting, the most this page takes); try again later."
            self.waiting.append((visitor, name))
            return None

    def turn(self, visitor: str, wait_s: float = 0.5) -> bool | None:
        """True once `visitor`'s job runs (it came first and nothing else runs); False while it waits (up to
        `wait_s` here); None when it holds no place (it left the page)."""
        with self.changed:
            self.changed.wait_for(lambda: self.waiting[:1] == self.place(visitor) and not self.running, wait_s)
            place = self.place(visitor)
            if not place:
                return None
            if self.waiting[0] != place[0] or self.running:
                return False
            self.running = self.waiting.pop(0)
            return True

    def leave(self, visitor: str, running: bool = True) -> None:
        """`visitor` gives up its place (its running job too, unless `running` is False)."""
        with self.changed:
            self.waiting = [place for place in self.waiting if place[0] != visitor]
            if running and self.running and self.running[0] == visitor:
                self.running = None
            self.changed.notify_all()

    def holders(self) -> list[str]:
        return [visitor for visitor, _ in [*self.waiting, *filter(None, [self.running])]]

    def place(self, visitor: str) -> list[tuple[str, str]]:
        return [place for place in self.waiting if place[0] == visitor]
