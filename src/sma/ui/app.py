"""The page's handlers: a job runs in a worker thread under `sma.progress.watch`, which feeds the page its progress
bars and loss curves and carries Cancel to the loops; every file and model a request names is checked here (`inside`,
the allowed models) and every job is admitted by `Admission`."""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import gradio as gr

from sma.errors import SmaError
from sma.progress import Step, watch
from sma.ui.access import Limits, inside
from sma.ui.jobs import Admission, Job, for_page, make_job
from sma.ui.results import UNTUNED, VARIANTS, Results, previous_runs, results

PHASES = {"train": "training", "invert": "inversion", "sample": "sampling", "dmt": "sampling (DMT)"}
PHASES |= {"untuned": "sampling"}  # shown as "untuned · sampling", whichever variant runs it


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
    """The page's state shared by every visitor: the output folder, the limits, the admitted jobs, each visitor's
    stop."""

    def __init__(self, out: Path, limits: Limits | None = None) -> None:
        self.out = Path(out).resolve()
        self.limits = limits or Limits()
        self.downloads = self.out / ".downloads"
        self.admission = Admission(self.limits.max_queue)
        self.stops: dict[str, threading.Event] = {}
        self.names: dict[Any, str] = {}  # the page's input components: field name by component

    @cached_property
    def models(self) -> dict[str, str]:
        """The models a visitor may choose, by label: the embedded one (""), the shipped recipes' and the server's
        `--allow-model` ones; nothing else reaches the server (no folder of this machine, no other Hub id)."""
        from sma.recipes import load_config, shipped_recipes

        chosen = {"the embedded model": ""}
        for recipe in shipped_recipes():
            model = load_config(recipe).model
            chosen.setdefault(model, model)
        return chosen | {model: model for model in self.limits.models}

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

    def leave(self, request: gr.Request) -> None:
        """A visitor closed the page: their job no longer holds a place in the queue."""
        self.admission.leave(request.session_hash, running=False)

    def cancel(self, request: gr.Request) -> str:
        stop = self.stops.get(request.session_hash)
        if stop is None:
            return "Nothing to cancel."
        stop.set()
        return "**Stopping** at the next step (training saves a checkpoint first)…"

    def requested(self, values: dict) -> Job:
        """The job a request asks for, its files and model checked: the reference and the picture are the page's
        own files (uploads, examples), the model one of `models`."""
        form = {self.names[component]: value for component, value in values.items()}
        for key in ("reference", "image"):
            if form.get(key):
                form[key] = str(inside(self.out, form[key], f"the {key}"))
        if (form.get("model") or "") not in self.models.values():
            raise SmaError(f"the model {form['model']!r} is not one this page offers: choose one from the list")
        return make_job(form, form.pop("reference"), self.out)

    def run(self, values: dict, request: gr.Request) -> Iterator[tuple]:
        """Run a job from the page's values (by component), once `Admission` lets it, yielding (status, progress,
        live losses, results…, previous runs, run name, resume)."""
        keep = (gr.update(),) * 8  # results (5), runs table, run name, resume: left as they are
        visitor = request.session_hash
        try:
            job = self.requested(values)
        except SmaError as error:
            yield (f"**Error:** {for_page(str(error))}", "", gr.update(), *keep)
            return
        refused = self.admission.enter(visitor, job.folder.name)
        if refused:
            yield (refused, "", gr.update(), *keep)
            return
        stop = self.stops[visitor] = threading.Event()
        try:
            while (turn := self.admission.turn(visitor)) is False and not stop.is_set():
                running = self.admission.running or ("", "another")
                status = f"**Queued:** another job ({running[1]}) is running; yours starts when it ends."
                yield (status, "", gr.update(), *keep)
            if not turn or stop.is_set():
                yield ("Cancelled before it started.", "", gr.update(), *keep)
                return
            yield from self.work(job, stop, keep)
        finally:
            self.admission.leave(visitor)

    def work(self, job: Job, stop: threading.Event, keep: tuple) -> Iterator[tuple]:
        """The admitted job, streamed to the page."""
        events: queue.Queue = queue.Queue()
        outcome: dict[str, BaseException] = {}
        self.downloads.mkdir(parents=True, exist_ok=True)
        live = self.downloads / f"{job.folder.name}-live-loss.png"
        worker = threading.Thread(target=self._work, args=(job, events, stop, outcome), daemon=True)
        targets = len(next(iter(job.configs.values())).targets)
        progress = Progress({variant: VARIANTS[variant] for variant in job.configs}, targets)
        deadline, late = time.monotonic() + 60 * self.limits.job_minutes, False
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

    def show(self, name: str | None) -> tuple:
        """A previous job's results: a job folder directly under `out`, whatever the name (a path, `../..`, a
        symlink) the request gives."""
        if not name:
            return ("Pick a run from the table first.", *(None,) * 5)
        try:
            job = inside(self.out, name, "the run")
            if job.parent != self.out or job.name.startswith(".") or not job.is_dir():
                raise SmaError(f"the run {name} is not one of this page's runs")
            found = results(job, self.downloads)
        except SmaError as error:
            return (f"**Error:** {for_page(str(error))}; pick a run from the table.", *(None,) * 5)
        return (f"Showing **{job.name}** (in {job})", *self.shown(found))
