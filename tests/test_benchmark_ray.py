"""`sma benchmark --executor ray` on one local Ray of 2 CPUs (started once for the module): every cell runs once,
as a Ray task, to the in-process executor's scores; the driver alone writes results.jsonl, so a killed driver
resumes; a failing cell is recorded and the others finish."""

import logging
import sys
from pathlib import Path

import pytest
from test_benchmark import write_suite

from sma.benchmark import RayExecutor, read_failures, read_results, read_suite, run_suite
from sma.errors import SmaError
from sma.runs import transfer

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers do not import the tests
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


class Logged:
    """The real transfer, each call written to a file (the tasks run in other processes); it fails the cells
    whose names hold `fail`."""

    def __init__(self, path, fail=None):
        self.path, self.fail = path, fail

    def __call__(self, config, reference, out, *, overwrite, tune):
        with open(self.path, "a") as calls:
            calls.write(out.name + "\n")
        if self.fail and self.fail in out.name:
            raise RuntimeError(f"cell {out.name} broke\nsecond line")
        return transfer(config, reference, out, overwrite=overwrite, tune=tune)

    def calls(self):
        return sorted(self.path.read_text().splitlines()) if self.path.exists() else []


def small_suite(tmp_path, model_dir):
    """Two cells (VMC with and without SMA) of one training step and one sampling step."""
    steps = {"train.checkpoint_every": 1, "generate": {"steps": 1, "inversion_steps": 1}}
    return read_suite(write_suite(tmp_path, model_dir, steps=1, overrides=steps))


IDENTITY = ("cell", "target", "method", "variant", "sma", "tuned", "seed", "fingerprint", "video")


def test_ray_runs_each_cell_once_as_in_process_records_a_failure_and_resumes_after_a_killed_driver(
    local_ray, tmp_path, model_dir
):
    suite = small_suite(tmp_path, model_dir)
    in_process = run_suite(suite, tmp_path / "here", progress=False)
    failing = Logged(tmp_path / "calls.txt", fail="nosma")
    first = run_suite(suite, tmp_path / "ray", resume=True, transfer=failing, executor=RayExecutor(), progress=False)
    assert failing.calls() == ["linear-vmc-nosma-seed0", "linear-vmc-sma-seed0"]  # each cell once
    assert [r["cell"] for r in first] == ["linear-vmc-sma-seed0"]  # the failure did not stop the other cell
    assert read_failures(tmp_path / "ray") == [
        {
            "cell": "linear-vmc-nosma-seed0",
            "fingerprint": in_process[1]["fingerprint"],
            "error": "RuntimeError: cell linear-vmc-nosma-seed0 broke",
        }
    ]
    assert "second line" in (tmp_path / "ray" / "logs" / "linear-vmc-nosma-seed0.log").read_text()  # the traceback

    results = tmp_path / "ray" / "results.jsonl"
    results.write_text(results.read_text() + '{"cell": "linear-vmc-nosma-se')  # a driver killed while writing
    resumed = Logged(tmp_path / "resumed.txt")
    on_ray = run_suite(suite, tmp_path / "ray", resume=True, transfer=resumed, executor=RayExecutor(), progress=False)
    assert resumed.calls() == ["linear-vmc-nosma-seed0"]  # the finished cell skipped, the failed one run again
    assert read_results(tmp_path / "ray") == on_ray and not read_failures(tmp_path / "ray")
    assert len(on_ray) == len(in_process) == 2
    for here, there in zip(in_process, on_ray, strict=True):  # the same settings, training and videos
        assert {key: here[key] for key in IDENTITY} == {key: there[key] for key in IDENTITY}
        assert here.keys() == there.keys()
        cell = Path("cells") / here["cell"]
        for made in ("losses.jsonl", Path(here["video"]).with_suffix(".gif").relative_to(cell)):
            assert (tmp_path / "ray" / cell / made).read_bytes() == (tmp_path / "here" / cell / made).read_bytes()


def test_fail_fast_stops_at_the_first_failure(local_ray, tmp_path, model_dir):
    suite = small_suite(tmp_path, model_dir)
    failing = Logged(tmp_path / "calls.txt", fail="seed")
    with pytest.raises(SmaError, match=r"cell linear-vmc-\w+-seed0 failed: RuntimeError: cell linear-vmc-"):
        run_suite(suite, tmp_path / "out", transfer=failing, executor=RayExecutor(), fail_fast=True, progress=False)
    assert not read_results(tmp_path / "out") and len(read_failures(tmp_path / "out")) == 1
