"""`sma ui`: a web page (Gradio) over `sma.runs.transfer`, with the command line's checks and messages.

A job is one `transfer` per variant (with SMA, and without it when asked) into OUT/JOB/sma and
OUT/JOB/nosma; the first variant also samples the untuned model (`generate.untuned`), the baseline of both.
One job runs at a time; the page reads every result back from the job's folder, so the runs made before show
the same way. Its parts, each importing only those before it: `access` (the limits, the one resolver of files a
request names, `Guard` in front of gradio's routes), `jobs` (fields -> configurations, `Admission`), `results`
(a job folder as the page shows it), `app` (the handlers), `layout` (the page and its server).
Imported only by `sma ui`, which checks first that gradio is installed (the `ui` extra).
"""

from sma.ui.access import Limits, inside
from sma.ui.app import App
from sma.ui.jobs import FIELDS, TOY_WORLD, make_job
from sma.ui.layout import build, launch, start
from sma.ui.results import SCORE_COLUMNS, results

__all__ = [
    "FIELDS",
    "SCORE_COLUMNS",
    "TOY_WORLD",
    "App",
    "Limits",
    "build",
    "inside",
    "launch",
    "make_job",
    "results",
    "start",
]
