# `make demo` and `make test` work on a fresh machine with only Python >= 3.10 and the package registries.
# The environment comes from requirements.lock: every package at an exact version, so a fresh clone installs
# today what it installed the day the lock was made. pyproject.toml keeps ranges for installing sma into an
# environment of your own; `make lock` refreshes the lock from them, `make test-latest` tries the newest releases.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHELL := /bin/bash
comma := ,
LOCK := requirements.lock
UV := uv==0.13.9
EXTRAS := dev,bench,ui,docs,ray
# Where pip finds torch's CPU build: the lock must name that build, not PyPI's CUDA one with its nvidia wheels.
TORCH_WHEELS ?= /opt/wheels

.PHONY: demo demo-simple test test-latest lint lock bench clean browser ui docs faults

demo: $(VENV)/.installed
	$(BIN)/sma demo --world hard --out sma-demo-hard --overwrite

demo-simple: $(VENV)/.installed
	$(BIN)/sma demo --out sma-demo --overwrite

test: $(VENV)/.installed browser docs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal  # two workers of one thread each; an idle one takes tests from the other

# Every kill point (kill -9, then resume or rerun: over a hundred) and more fuzzed inputs than `make test` tries
# (it runs a subset of the kill points that changes with the day; SMA_FAULT_ROTATION=N replays day N's).
faults: $(VENV)/.installed
	SMA_FAULTS=all OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q tests/test_fault_injection.py tests/test_fuzz.py

lint: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: $(VENV)/.installed
	$(BIN)/sma ui

# The documentation site from docs/ and the docstrings, into site/; --strict fails on a broken link.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The browser test (tests/test_ui_browser.py) drives Debian's Chromium through Playwright; Playwright's own
# browser download is not used. Installed with apt-get as root or with passwordless sudo; otherwise the test is
# skipped and says why.
browser:
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then S=; else S="sudo -n"; fi; \
	    $$S apt-get update -qq && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium could not be installed: the browser test will be skipped"

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/sma_loss.py

# torch is pinned first, by pip, which finds the CPU build on these machines: an unpinned torch would pull a
# multi-GB CUDA build. uv then installs the lock (it keeps that torch: 2.13.0+cpu is a 2.13.0) and sma itself.
$(VENV)/.installed: $(LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0 $(UV)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# Resolved for Python 3.11, the machines' Python; the CPU torch wheel's local label (+cpu) is dropped so that
# the line reads as the pin above.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet $(UV)
	{ echo "# make lock: uv pip compile of pyproject.toml (extras $(EXTRAS)) for Python 3.11; refresh it with make lock, not by hand"; \
	  .venv-lock/bin/uv pip compile pyproject.toml $(addprefix --extra ,$(subst $(comma), ,$(EXTRAS))) \
	    --python-version 3.11 --find-links $(TORCH_WHEELS) --constraint <(echo torch==2.13.0) --no-header --quiet \
	  | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)

# The newest release of everything pyproject.toml allows (torch stays at the CPU pin), in .venv-latest: drift
# shows here before it reaches a lock.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet torch==2.13.0
	.venv-latest/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[$(EXTRAS)]' torch==2.13.0
	.venv-latest/bin/pip freeze --all --exclude-editable | sed -E 's/^[^=]+/\L&/; s/_/-/g; s/\+cpu$$//' \
	  | grep -v '^pip==' | diff $(LOCK) - \
	  | grep '^[<>] [^ #]' || echo "the newest releases are the lock's"
	OMP_NUM_THREADS=1 .venv-latest/bin/python -m pytest -q -n 2

clean:
	rm -rf $(VENV) .venv-latest .venv-lock build site src/*.egg-info .pytest_cache .ruff_cache .hypothesis
