# `make demo` and `make test` work on a fresh machine with only Python >= 3.10 and the package registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean browser ui

demo: $(VENV)/.installed
	$(BIN)/sma demo --out sma-demo --overwrite
	$(BIN)/sma demo --world hard --out sma-demo-hard --overwrite

test: $(VENV)/.installed browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: $(VENV)/.installed
	$(BIN)/sma ui

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

# torch is pinned first: an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,bench,ui]'
	touch $@

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache .hypothesis
