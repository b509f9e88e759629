"""`sma ui`: a web page (Gradio) over `sma.runs.transfer`, with the command line's checks and messages.

A job is one `transfer` per variant (with SMA, and without it when asked) into OUT/JOB/sma and
OUT/JOB/nosma; the first variant also samples the untuned model (`generate.untuned`), the baseline of both.
It runs in a worker thread under `sma.progress.watch`, which feeds the page its
progress bars and loss curves and carries Cancel to the loops. One job runs at a time; the
page reads every result back from the job's folder, so the runs made before show the same way.
Imported only by `sma ui`, which checks first that gradio is installed (the `ui` extra).
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from sma.config import TransferConfig
from sma.errors import SmaError, phrase_keys
from sma.evaluation import BY_KEY, HEADLINE
from sma.methods import METHODS, method_class
from sma.progress import Step, watch
from sma.report import read_metrics
from sma.run_folder import ADAPTER_DIR, is_run_folder, slug

TOY_WORLD = "toy world (embedded model)"  # the recipe choice that sets up runs as `sma demo` does
VARIANTS = {"sma": "with SMA", "nosma": "without SMA"}
UNTUNED = "untuned"  # the label of the untuned model's videos and scores
PHASES = {"train": "training", "invert": "inversion", "sample": "sampling", "dmt": "sampling (DMT)"}
PHASES |= {"untuned": "sampling"}  # shown as "untuned · sampling", whichever variant runs it
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
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")  # what the page takes as a reference
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")  # and as a start image
CSS = """
#status {min-height: 1.5em}
.phase-row {display: grid; grid-template-columns: 14em 1fr 6em; gap: .6em; align-items: center; margin: .15em 0}
.phase-row progress {width: 100%; height: .9em}
"""


def for_page(message: str) -> str:
    """A library message with its config keys named by the page's fields."""
    return phrase_keys(message, {key: f"'{label}'" for key, label in FIELDS.items()} | {"overwrite": "a new Run name"})


def config_from(form: dict[str, Any]) -> TransferConfig:
    """The run's configuration from the page's fields, as `sma transfer` builds it from flags and a recipe."""
    from sma.embedded import embedded_model
    from sma.embedded.world import run_config
    from sma.recipes import load_config

    targets = [line.strip() for line in (form["targets"] or "").splitlines() if line.strip()]
    keys = ("sma.global_weight", "sma.local_weight", "video.frames", "video.height", "video.width")
    keys += ("generate.inversion_steps",)
    overrides = {key: _number(form[key]) for key in keys} | {"generate.untuned": bool(form["generate.untuned"])}
    if form.get("image"):  # an uploaded picture: every target starts from it (image-to-video models)
        overrides["image"] = form["image"]
    if form["recipe"] == TOY_WORLD:
        return run_config(
            form["model"].strip() or embedded_model(),
            form["prompt"],
            targets,
            method=form["method"],
            steps=int(form["train.steps"]),
            seed=int(form["seed"]),
            sma=form["sma.enabled"],
            sampling_steps=int(form["generate.steps"]),
            guidance_scale=7.5,
            overrides=overrides,
        )
    method = method_class(form["method"])
    overrides |= {
        "method": form["method"],
        "model": form["model"].strip() or embedded_model(),
        "prompt": form["prompt"],
        "targets": targets,
        "seed": int(form["seed"]),
        **method.sma_switch(form["sma.enabled"]),
        "generate.steps": int(form["generate.steps"]),
    }
    if method.trains:
        overrides["train.steps"] = int(form["train.steps"])
    return load_config(form["recipe"], overrides)


def _number(value: float) -> int | float:
    """Gradio's numbers are floats; a whole one is the integer the recipe key takes."""
    return int(value) if float(value).is_integer() and not isinstance(value, bool) else value


def recipe_defaults(recipe: str, method: str) -> TransferConfig:
    """What the fields show for a recipe (the toy world's: the demo's settings for `method`)."""
    from sma.embedded import embedded_model
    from sma.embedded.world import run_config
    from sma.recipes import load_config

    if recipe == TOY_WORLD:
        return run_config(
            embedded_model(), "", [], method=method, steps=150, seed=0, sampling_steps=20, guidance_scale=7.5
        )
    return load_config(recipe)


@dataclass
class Job:
    """One press of Run: the configuration of each variant and where they go."""

    folder: Path
    reference: Path
    configs: dict[str, TransferConfig]
    resume: bool


@dataclass
class Limits:
    """What the page allows its visitors: who may log in ((user, password) pairs; None: anyone), the size of an
    upload, how many jobs may wait for the running one, and how long one job may run."""

    auth: list[tuple[str, str]] | None = None
    max_upload_mb: float = 200
    max_queue: int = 4
    job_minutes: float = 120


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
    name = slug(form["name"].strip(), 60) if form["name"].strip() else None
    if form["resume"] and not name:
        raise SmaError("give the Run name of the run to resume")
    name = name or time.strftime("%Y%m%d-%H%M%S-") + slug(config.targets[0] if config.targets else "run", 30)
    folder = out / name
    if not form["resume"] and folder.exists():
        raise SmaError(f"{folder} already exists: choose another Run name, or tick Resume to continue it")
    return Job(folder, Path(reference), configs, bool(form["resume"]))


def run_folders(job: Path) -> list[Path]:
    """The run folders of a job (a folder made by `sma transfer` is its own single run)."""
    if is_run_folder(job):
        return [job]
    return [job / variant for variant in VARIANTS if is_run_folder(job / variant)]


@dataclass
class Results:
    comparison: str | None = None
    videos: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[list[Any]] = field(default_factory=list)
    losses: str | None = None
    downloads: list[str] = field(default_factory=list)


SCORE_COLUMNS = (HEADLINE, "robust_two_sided_mean", "motion_fidelity_lk")  # of metrics.json, as shown
METRIC_COLUMNS = ["run", "target", *(BY_KEY[key].title for key in SCORE_COLUMNS)]


def results(job: Path, downloads: Path) -> Results:
    """What a job's folder holds, as the page shows it: the untuned model's videos and scores first, then each
    variant's; the comparison of both variants (reference, the picture of an image-to-video run, untuned, with SMA,
    without SMA) is written once."""
    from sma.methods.image_to_video import image_for
    from sma.recipes import load_config
    from sma.video import read_video, write_grid
    from sma.video.image import still_video

    found = Results()
    runs = run_folders(job)
    metrics = {run: read_metrics(run) for run in runs}
    baseline = next((run for run in runs if metrics[run].get("untuned")), None)
    shown = [(baseline, "untuned", UNTUNED)] if baseline else []
    shown += [(run, "outputs", VARIANTS.get(run.name, run.name)) for run in runs]
    for run, kind, label in shown:
        for output in metrics[run].get(kind, []):
            found.videos.append((str(run / output["video"]), f"{label}: {output['target']}"))
            found.metrics.append(
                [
                    label,
                    output["target"],
                    *(rounded(output[key]) for key in SCORE_COLUMNS),
                ]
            )
    found.losses = next((str(run / "loss_curves.png") for run in runs if (run / "loss_curves.png").is_file()), None)
    finished = [run for run in runs if (run / "comparison.mp4").is_file()]
    if len(finished) == 1:
        found.comparison = str(finished[0] / "comparison.mp4")
    elif len(finished) > 1:
        path = job / "comparison.mp4"
        if not path.is_file():
            columns = [(run, "outputs", VARIANTS.get(run.name, run.name)) for run in finished]
            if baseline in finished:
                columns.insert(0, (baseline, "untuned", UNTUNED))
            cells, captions = [], []
            config = load_config(finished[0] / "config.yaml")  # its pictures (image to video): shown still
            pictures = bool(config.image or config.target_images)
            for row in zip(*(metrics[run][kind] for run, kind, _ in columns), strict=False):
                cells.append(read_video(finished[0] / "reference.mp4"))
                captions.append("reference")
                if pictures:
                    cells.append(still_video(image_for(config, row[0]["target"]), *cells[-1].shape[:3]))
                    captions.append("image")
                for (run, _, label), output in zip(columns, row, strict=True):
                    cells.append(read_video(run / output["video"]))
                    captions.append(f"{label}: {output['target']}")
            write_grid(path, cells, captions, columns=1 + pictures + len(columns), overwrite=True)
        found.comparison = str(path)
    if runs:
        found.downloads = archives(job, runs, downloads)
    return found


def archives(job: Path, runs: list[Path], downloads: Path) -> list[str]:
    """Zips of the adapters and of the whole job folder, and each adapter as a diffusers LoRA where it exports
    as one (`sma export`), beside the runs (not in them)."""
    import zipfile

    from sma.export import export_adapter

    downloads.mkdir(parents=True, exist_ok=True)
    made = []
    adapters = [run / ADAPTER_DIR for run in runs if (run / ADAPTER_DIR).is_dir()]
    if adapters:
        path = downloads / f"{job.name}-adapter.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for adapter in adapters:
                for file in sorted(adapter.rglob("*")):
                    archive.write(file, file.relative_to(job.parent))
        made.append(str(path))
    for adapter in adapters:
        lora = downloads / f"{job.name}-{adapter.parent.name}-lora-diffusers.safetensors"
        try:
            made += [str(export.path) for export in export_adapter(adapter, "diffusers", lora, overwrite=True)]
        except SmaError:  # a method whose trained layers a LoRA cannot hold
            continue
    made.append(shutil.make_archive(str(downloads / job.name), "zip", job.parent, job.name))
    return made


def previous_runs(out: Path) -> list[list[Any]]:
    """One row per run folder under `out` (newest first): job, variant, method, SMA, steps, targets, fidelity."""
    from sma.recipes import load_config

    rows = []
    if not out.is_dir():
        return rows
    jobs = sorted((path for path in out.iterdir() if path.is_dir() and not path.name.startswith(".")), reverse=True)
    for job in jobs:
        for run in run_folders(job):
            try:
                config = load_config(run / "config.yaml")
            except SmaError:
                continue
            outputs = read_metrics(run).get("outputs", [])
            scores = [output[HEADLINE] for output in outputs if output[HEADLINE] is not None]
            checkpoints = sorted((run / "checkpoints").glob("step-*"))
            state = (
                f"{len(outputs)} videos" if outputs else f"stopped at {checkpoints[-1].name}" if checkpoints else "-"
            )
            rows.append(
                [
                    job.name,
                    VARIANTS.get(run.name, "") if run != job else "",
                    config.method,
                    "on" if config.sma.enabled else "off",
                    config.train.steps,
                    " | ".join(config.targets),
                    round(sum(scores) / len(scores), 3) if scores else None,
                    state,
                ]
            )
    return rows


PREVIOUS_COLUMNS = ["run", "variant", "method", "SMA", "steps", "targets", BY_KEY[HEADLINE].title, "state"]


class Progress:
    """The bars of the running job (one per variant and phase), which video each variant is at, and its losses."""

    def __init__(self, labels: dict[str, str], videos: int) -> None:
        self.labels, self.total_videos = labels, videos
        self.bars: dict[tuple[str, str], tuple[int, int]] = {}
        self.video: dict[tuple[str, str], int] = {}  # the video each variant's phase is at
        self.losses: list[tuple[int, float, str]] = []
        self._plotted, self._drawn = 0, 0.0

    def add(self, variant: str, step: Step) -> None:
        if step.done == 1:
            self.video[variant, step.phase] = self.video.get((variant, step.phase), 0) + 1
        self.bars[variant, step.phase] = (step.done, step.total)
        if "loss" in step.values:
            self.losses.append((step.done, step.values["loss"], self.labels[variant]))

    def html(self) -> str:
        rows = []
        for (variant, phase), (done, total) in self.bars.items():
            name = f"{UNTUNED if phase == 'untuned' else self.labels[variant]} · {PHASES.get(phase, phase)}"
            if phase not in ("train", "invert") and self.total_videos > 1:  # one inversion serves every video
                name += f" (video {self.video.get((variant, phase), 1)} of {self.total_videos})"
            rows.append(
                f'<div class="phase-row"><span>{name}</span><progress value="{done}" max="{total}"></progress>'
                f"<span>{done} / {total}</span></div>"
            )
        return "".join(rows) or "<div class='phase-row'><span>loading the model…</span></div>"

    def plot(self, path: Path, final: bool = False):
        """The total loss of each training step so far, one panel per variant (as the run's loss_curves.png),
        redrawn at most every two seconds (and at the end); left as it is when nothing changed."""
        stale = len(self.losses) != self._plotted
        if not self.losses or not stale or (time.monotonic() - self._drawn < 2 and not final):
            return gr.update()
        from sma.report import plot_losses

        plot_losses([{"step": step - 1, f"loss, {label}": value} for step, value, label in self.losses], path)
        self._plotted, self._drawn = len(self.losses), time.monotonic()
        return str(path)


class App:
    """The page's state shared by every visitor: the output folder, the running job, each visitor's stop."""

    def __init__(self, out: Path, limits: Limits | None = None) -> None:
        self.out = Path(out).resolve()
        self.limits = limits or Limits()
        self.downloads = self.out / ".downloads"
        self.running: str | None = None
        self.stops: dict[str, threading.Event] = {}
        self.waiting: set[str] = set()  # the visitors whose job waits for the running one
        self.refused: set[str] = set()  # the visitors whose last press of Run the queue limit turned away
        self.lock = threading.Lock()
        self.names: dict[Any, str] = {}  # the page's input components: field name by component

    def examples(self) -> dict[str, tuple[str, str, str]]:
        """The simple world's reference motions (`sma.embedded.scenes`, the demo's first) as clips: (path, its
        prompt, a target), by name."""
        from sma.embedded.scenes import EXAMPLE_TARGET, REFERENCE_MOTIONS
        from sma.embedded.world import reference_clip
        from sma.video import write_video

        examples = {}
        for name, reference in REFERENCE_MOTIONS.items():
            clip = reference_clip(reference)
            path = self.out / ".examples" / f"{name}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file():
                write_video(path, clip.frames, overwrite=True)
            examples[name] = (str(path), clip.prompt, EXAMPLE_TARGET)
        return examples

    def enqueue(self, request: gr.Request) -> str:
        """A fresh stop for this visitor's next job, and whether it waits for another or is turned away (more than
        `max_queue` waiting)."""
        visitor = request.session_hash
        self.stops[visitor] = threading.Event()
        with self.lock:
            if not self.running:
                return "Starting…"
            if visitor not in self.waiting and len(self.waiting) >= self.limits.max_queue:
                self.refused.add(visitor)
                waiting = len(self.waiting)
                return f"**Refused:** the queue is full ({waiting} waiting, the most this page takes); try again later."
            self.waiting.add(visitor)
        return f"**Queued:** another job ({self.running}) is running; yours starts when it ends."

    def admit(self, request: gr.Request) -> None:
        """Ends a refused press of Run here, silently (its line is on the page), so that it never joins the queue."""
        if request.session_hash in self.refused:
            self.refused.discard(request.session_hash)
            raise gr.Error("the queue is full", visible=False, print_exception=False)

    def leave(self, request: gr.Request) -> None:
        """A visitor closed the page: their job no longer holds a place in the queue (gradio drops it)."""
        with self.lock:
            self.waiting.discard(request.session_hash)

    def cancel(self, request: gr.Request) -> str:
        stop = self.stops.get(request.session_hash)
        if stop is None:
            return "Nothing to cancel."
        stop.set()
        return "**Stopping** at the next step (training saves a checkpoint first)…"

    def run(self, values: dict, request: gr.Request) -> Iterator[tuple]:
        """Run a job from the page's values (by component), yielding (status, progress, live losses, results…,
        previous runs, run name, resume)."""
        keep = (gr.update(),) * 8  # results (5), runs table, run name, resume: left as they are
        with self.lock:
            self.waiting.discard(request.session_hash)
        stop = self.stops.get(request.session_hash, threading.Event())
        if stop.is_set():
            yield ("Cancelled before it started.", "", gr.update(), *keep)
            return
        form = {self.names[component]: value for component, value in values.items()}
        try:
            job = make_job(form, form.pop("reference"), self.out)
        except SmaError as error:
            yield (f"**Error:** {for_page(str(error))}", "", gr.update(), *keep)
            return
        events: queue.Queue = queue.Queue()
        outcome: dict[str, BaseException] = {}
        self.downloads.mkdir(parents=True, exist_ok=True)
        live = self.downloads / f"{job.folder.name}-live-loss.png"
        worker = threading.Thread(target=self._work, args=(job, events, stop, outcome), daemon=True)
        targets = len(next(iter(job.configs.values())).targets)
        progress = Progress({variant: VARIANTS[variant] for variant in job.configs}, targets)
        with self.lock:
            self.running = job.folder.name
        deadline, late = time.monotonic() + 60 * self.limits.job_minutes, False
        try:
            worker.start()
            status = f"Running **{job.folder.name}**…"
            while worker.is_alive() or not events.empty():
                if time.monotonic() > deadline and not stop.is_set():
                    stop.set()
                    late = True
                try:
                    progress.add(*events.get(timeout=0.5))
                    while not events.empty():
                        progress.add(*events.get_nowait())
                except queue.Empty:
                    pass
                yield (status, progress.html(), progress.plot(live), *keep)
        finally:
            with self.lock:
                self.running = None
        error = outcome.get("error")
        runs = gr.update(value=previous_runs(self.out))
        if error is not None:
            again = (gr.update(value=job.folder.name), gr.update(value=True)) if (job.folder / "sma").exists() else ()
            again = again or (gr.update(), gr.update())
            prefix = "**Cancelled:**" if stop.is_set() else "**Error:**"
            if late:
                prefix = f"**Time limit:** the job ran past the page's {self.limits.job_minutes:g} minutes;"
            yield (
                f"{prefix} {for_page(str(error))}",
                progress.html(),
                progress.plot(live, final=True),
                *keep[:5],
                runs,
                *again,
            )
            return
        found = results(job.folder, self.downloads)
        yield (
            f"**Done:** {job.folder.name} (in {job.folder})",
            progress.html(),
            progress.plot(live, final=True),
            *self.shown(found),
            runs,
            gr.update(value=""),
            gr.update(value=False),
        )

    def _work(self, job: Job, events: queue.Queue, stop: threading.Event, outcome: dict) -> None:
        """Every variant's transfer, reporting its steps; an error is kept for the page, with its traceback only
        on the terminal when it is not the user's to fix."""
        from sma.runs import transfer

        try:
            for variant, config in job.configs.items():
                with watch(lambda step, variant=variant: events.put((variant, step)), stop):
                    transfer(config, job.reference, job.folder / variant, resume=job.resume)
        except SmaError as error:
            outcome["error"] = error
        except Exception as error:  # the page stays up and says what happened
            traceback.print_exc()
            outcome["error"] = SmaError(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")

    @staticmethod
    def shown(found: Results) -> tuple:
        return (found.comparison, found.videos, found.metrics, found.losses, found.downloads or None)

    def show(self, name: str) -> tuple:
        """A previous job's results."""
        if not name or not (self.out / name).is_dir():
            return ("Pick a run from the table first.", *(None,) * 5)
        found = results(self.out / name, self.downloads)
        return (f"Showing **{name}** (in {self.out / name})", *self.shown(found))


def build(out: Path, limits: Limits | None = None):
    """The page: the inputs (left), the job's progress and results (right), the previous runs (below)."""
    app = App(out, limits)
    defaults = recipe_defaults(TOY_WORLD, "vmc")
    with gr.Blocks(title="sma: motion transfer") as page:
        gr.Markdown(
            "## sma · motion transfer with Spectral Motion Alignment\n"
            "Give a reference video and what it shows; each target prompt becomes a new video that moves the same "
            "way. The toy world runs on a laptop CPU in a minute or two."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                reference, fields = input_fields(defaults)
                examples = app.examples()
                example = gr.Radio(list(examples), label="Or an example (synthetic references)", elem_id="example")
                settings_fields(fields, defaults)
            with gr.Column(scale=3, min_width=320):
                shown = output_panel()
        with gr.Accordion("Previous runs", open=False, elem_id="previous"):
            previous = previous_panel(app)
        app.names = {component: name for name, component in fields.items()} | {reference: "reference"}
        connect_job(app, fields, shown, previous["runs"])
        page.unload(app.leave)
        example.change(
            lambda name: examples[name] if name else (gr.update(),) * 3,
            example,
            [reference, fields["prompt"], fields["targets"]],
        )
        connect_recipe(fields, shown["status"])
        connect_previous(app, page, previous, shown)
    return page, app


def input_fields(defaults: TransferConfig) -> tuple[Any, dict[str, Any]]:
    """The reference video and the fields above the settings, by the config key they set (FIELDS)."""
    from sma.recipes import shipped_recipes

    reference = gr.Video(label="Reference video", sources=["upload"], height=240, elem_id="reference")
    fields = {
        "recipe": gr.Dropdown([TOY_WORLD, *shipped_recipes()], value=TOY_WORLD, label=FIELDS["recipe"]),
        "method": gr.Dropdown(list(METHODS), value=defaults.method, label=FIELDS["method"]),
        "model": gr.Textbox(label=FIELDS["model"], placeholder="the embedded model (Hub id or folder)"),
        "prompt": gr.Textbox(label=FIELDS["prompt"], elem_id="prompt"),
        "targets": gr.Textbox(label=FIELDS["targets"] + " (one per line)", lines=2, elem_id="targets"),
        "image": gr.Image(
            label=FIELDS["image"] + " (image-to-video models: Wan 2.2 TI2V-5B and I2V-A14B, Wan 2.1 I2V-14B)",
            type="filepath",
            sources=["upload"],
            height=160,
            elem_id="image",
        ),
    }
    return reference, fields


def settings_fields(fields: dict[str, Any], defaults: TransferConfig) -> None:
    """The switches and the Settings accordion, added to `fields`."""

    def number(key: str, value, **options):
        fields[key] = gr.Number(value, label=FIELDS[key], **options)

    with gr.Row():
        fields["sma.enabled"] = gr.Checkbox(defaults.sma.enabled, label=FIELDS["sma.enabled"])
        fields["compare"] = gr.Checkbox(True, label=FIELDS["compare"], elem_id="compare")
        fields["generate.untuned"] = gr.Checkbox(True, label=FIELDS["generate.untuned"], elem_id="untuned")
    with gr.Accordion("Settings", open=False, elem_id="settings"):
        with gr.Row():
            number("sma.global_weight", defaults.sma.global_weight)
            number("sma.local_weight", defaults.sma.local_weight)
        with gr.Row():
            number("train.steps", defaults.train.steps, precision=0, elem_id="steps")
            for side in ("frames", "height", "width"):
                number(f"video.{side}", getattr(defaults.video, side), precision=0)
        with gr.Row():
            number("generate.steps", defaults.generate.steps, precision=0, elem_id="sampling-steps")
            number(
                "generate.inversion_steps", defaults.generate.inversion_steps, precision=0, elem_id="inversion-steps"
            )
            number("seed", defaults.seed, precision=0)
        with gr.Row():
            fields["name"] = gr.Textbox(label=FIELDS["name"], placeholder="new: date and target", elem_id="name")
            fields["resume"] = gr.Checkbox(False, label=FIELDS["resume"] + " (after a Cancel)")


def output_panel() -> dict[str, Any]:
    """Run and Cancel, the status, the progress bars and live loss, and the results (RESULTS_SHOWN, in order)."""
    with gr.Row():
        start = gr.Button("Run", variant="primary", elem_id="run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
    shown = {"start": start, "cancel": cancel, "status": gr.Markdown("Ready.", elem_id="status")}
    shown["bars"] = gr.HTML(elem_id="progress")
    shown["live"] = gr.Image(
        label="Loss while training", type="filepath", interactive=False, height=240, elem_id="live-loss"
    )
    shown["comparison"] = gr.Video(
        label="Comparison", interactive=False, autoplay=True, loop=True, elem_id="comparison"
    )
    shown["metrics"] = gr.Dataframe(headers=METRIC_COLUMNS, label="Metrics", interactive=False, elem_id="metrics")
    with gr.Accordion("Each video, the loss curves, downloads", open=True):
        shown["videos"] = gr.Gallery(label="Generated videos", columns=4, height="auto", elem_id="videos")
        shown["losses"] = gr.Image(label="Loss curves", type="filepath", interactive=False, height=420)
        shown["downloads"] = gr.File(
            label="Downloads: adapter, LoRA for diffusers, run folder", file_count="multiple", elem_id="downloads"
        )
    return shown


RESULTS_SHOWN = ("comparison", "videos", "metrics", "losses", "downloads")  # the order of `App.shown`


def previous_panel(app: App) -> dict[str, Any]:
    runs = gr.Dataframe(previous_runs(app.out), headers=PREVIOUS_COLUMNS, interactive=False, wrap=True, elem_id="runs")
    with gr.Row():
        chosen = gr.Dropdown(label="Run", choices=[], allow_custom_value=True, scale=3)
        show = gr.Button("Show its results", scale=1)
        refresh = gr.Button("Refresh", scale=1)
    return {"runs": runs, "chosen": chosen, "show": show, "refresh": refresh}


def connect_job(app: App, fields: dict[str, Any], shown: dict[str, Any], runs) -> None:
    """Run queues a job (one at a time, a few waiting at most) that streams its progress and results; Cancel
    stops it."""
    results = [shown[name] for name in RESULTS_SHOWN]
    queued = shown["start"].click(app.enqueue, None, shown["status"], concurrency_limit=None)
    queued.then(app.admit, None, None, concurrency_limit=None, show_progress="hidden").success(
        app.run,
        set(app.names),
        [shown["status"], shown["bars"], shown["live"], *results, runs, fields["name"], fields["resume"]],
        concurrency_limit=1,
        concurrency_id="job",
    )
    shown["cancel"].click(app.cancel, None, shown["status"], concurrency_limit=None)


RECIPE_FILLS = ("method", "model", "sma.enabled", "train.steps", "video.frames", "video.height", "video.width")
RECIPE_FILLS += ("generate.steps", "generate.inversion_steps")  # the fields a recipe's choice fills, in order


def connect_recipe(fields: dict[str, Any], status) -> None:
    """A recipe's choice fills the fields with its settings (the toy world's: the demo's for the method)."""

    def fill(recipe: str, method: str) -> tuple:
        try:
            config = recipe_defaults(recipe, method)
        except SmaError as error:
            return (f"**Error:** {for_page(str(error))}", *(gr.update(),) * len(RECIPE_FILLS))
        return (
            "Ready.",
            gr.update(value=config.method),
            "" if recipe == TOY_WORLD else config.model,
            config.sma.enabled,
            config.train.steps,
            config.video.frames,
            config.video.height,
            config.video.width,
            config.generate.steps,
            config.generate.inversion_steps,
        )

    fields["recipe"].change(
        fill, [fields["recipe"], fields["method"]], [status, *(fields[key] for key in RECIPE_FILLS)]
    )


def connect_previous(app: App, page, previous: dict[str, Any], shown: dict[str, Any]) -> None:
    """The previous runs' table, refreshed on load and on demand; Show puts a chosen run's results on the page."""
    runs, chosen = previous["runs"], previous["chosen"]

    def listed() -> tuple:
        rows = previous_runs(app.out)
        return rows, gr.update(choices=list(dict.fromkeys(row[0] for row in rows)))

    previous["refresh"].click(listed, None, [runs, chosen])
    page.load(listed, None, [runs, chosen])
    runs.change(lambda rows: gr.update(choices=list(dict.fromkeys(rows.iloc[:, 0]))), runs, chosen)
    previous["show"].click(app.show, chosen, [shown["status"], *(shown[name] for name in RESULTS_SHOWN)])


def rounded(score: float | None) -> float | None:
    """A score for the page's tables: an undefined one (no moving point tracked) stays an empty cell."""
    return None if score is None else round(score, 3)


def start(out: Path, host: str = "127.0.0.1", port: int = 7860, share: bool = False, limits: Limits | None = None):
    """The page, served from a thread. It serves files from `out` alone: its runs, downloads, examples and the
    visitors' uploads (gradio's upload folder, GRADIO_TEMP_DIR, moves into `out/.uploads`)."""
    limits = limits or Limits()
    os.environ["GRADIO_TEMP_DIR"] = str(Path(out).resolve() / ".uploads")
    page, app = build(out, limits)
    for event in page.fns.values():  # the page's events serve the page alone: gradio would describe them to anyone,
        event.api_visibility = "private"  # logged in or not, in the HTML of its login page
    app.out.mkdir(parents=True, exist_ok=True)
    page.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=limits.auth,
        auth_message="Log in to run motion transfers.",
        max_file_size=int(limits.max_upload_mb * 2**20),
        allowed_paths=[str(app.out)],
        css=CSS,
        theme=gr.themes.Soft(),
        footer_links=[],
        quiet=True,
        prevent_thread_lock=True,
    )
    return page


def launch(
    out: Path, host: str = "127.0.0.1", port: int = 7860, share: bool = False, limits: Limits | None = None
) -> None:
    """Serve the page until interrupted; prints its address in sma's words (gradio's own lines name its
    Python API: `share=True in launch()`, where a user of `sma ui` has `--share`)."""
    page = start(out, host, port, share, limits)
    print(f"sma ui: serving {page.local_url}", flush=True)
    if page.share_url:
        print(f"sma ui: public link {page.share_url}", flush=True)
    else:
        print("sma ui: --share also serves it through a public gradio.live link", flush=True)
    page.block_thread()
