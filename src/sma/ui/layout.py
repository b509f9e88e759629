"""The page's layout: its fields, panels and events, and the server (`start`, `launch`) with `Guard` in front."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gradio as gr
from starlette.middleware import Middleware

from sma.config import TransferConfig
from sma.errors import SmaError
from sma.methods import METHODS
from sma.ui.access import Guard, Limits
from sma.ui.app import App
from sma.ui.jobs import FIELDS, TOY_WORLD, for_page, recipe_defaults
from sma.ui.results import METRIC_COLUMNS, PREVIOUS_COLUMNS, previous_runs

CSS = """
#status {min-height: 1.5em}
.phase-row {display: grid; grid-template-columns: 14em 1fr 6em; gap: .6em; align-items: center; margin: .15em 0}
.phase-row progress {width: 100%; height: .9em}
"""


def build(out: Path, limits: Limits | None = None):
    """The page: the inputs (left), the job's progress and results (right), the previous runs (below)."""
    app = App(out, limits)
    defaults = recipe_defaults(TOY_WORLD, "vmc")
    with gr.Blocks(title="sma: motion transfer", analytics_enabled=False) as page:
        gr.Markdown(
            "## sma · motion transfer with Spectral Motion Alignment\n"
            "Give a reference video and what it shows; each target prompt becomes a new video that moves the same "
            "way. The toy world runs on a laptop CPU in a minute or two."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                reference, fields = input_fields(defaults, app.models)
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


def input_fields(defaults: TransferConfig, models: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    """The reference video and the fields above the settings, by the config key they set (FIELDS); the model is
    chosen from `models` (label: value), never typed."""
    from sma.recipes import shipped_recipes

    reference = gr.Video(label="Reference video", sources=["upload"], height=240, elem_id="reference")
    fields = {
        "recipe": gr.Dropdown([TOY_WORLD, *shipped_recipes()], value=TOY_WORLD, label=FIELDS["recipe"]),
        "method": gr.Dropdown(list(METHODS), value=defaults.method, label=FIELDS["method"]),
        "model": gr.Dropdown(list(models.items()), value="", label=FIELDS["model"], elem_id="model"),
        "prompt": gr.Textbox(label=FIELDS["prompt"], elem_id="prompt"),
        "targets": gr.Textbox(label=FIELDS["targets"] + " (one per line)", lines=2, elem_id="targets"),
        "image": gr.Image(
            label=FIELDS["image"] + " (image-to-video models: Wan 2.2 TI2V-5B, Wan 2.1 I2V-14B)",
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
    """Run starts a job (App.run admits it: one at a time, a few waiting at most) that streams its progress and
    results; Cancel stops it."""
    results = [shown[name] for name in RESULTS_SHOWN]
    shown["start"].click(
        app.run,
        set(app.names),
        [shown["status"], shown["bars"], shown["live"], *results, runs, fields["name"], fields["resume"]],
        concurrency_limit=None,  # every call reaches App.run at once, whose Admission queues or refuses it
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


def start(out: Path, host: str = "127.0.0.1", port: int = 7860, share: bool = False, limits: Limits | None = None):
    """The page, served from a thread with `Guard` in front. It serves files from `out` alone: its runs, downloads,
    examples and the visitors' uploads (gradio's upload folder, GRADIO_TEMP_DIR, moves into `out/.uploads`, emptied
    as the server starts); what it writes is its user's alone (umask 077)."""
    limits = limits or Limits()
    os.umask(0o077)
    uploads = Path(out).resolve() / ".uploads"
    shutil.rmtree(uploads, ignore_errors=True)  # the last server's: no page of this one can name them
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # gradio's telemetry, which its launch() sends even to errors
    page, app = build(out, limits)
    for event in page.fns.values():  # the page's events serve the page alone: gradio would describe them to anyone,
        event.api_visibility = "private"  # logged in or not, in the HTML of its login page
    app.out.mkdir(parents=True, exist_ok=True)
    origins: set[str] = set()  # filled with the public link's once there is one
    page.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=limits.auth,
        auth_message="Log in to run motion transfers.",
        max_file_size=int(limits.max_upload_mb * 2**20),
        allowed_paths=[str(app.out)],
        app_kwargs={"middleware": [Middleware(Guard, limits=limits, origins=origins)]},
        css=CSS,
        theme=gr.themes.Soft(),
        footer_links=[],
        quiet=True,
        prevent_thread_lock=True,
    )
    if page.share_url:
        origins.add(urlsplit(page.share_url).netloc)
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
