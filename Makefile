# Both targets bootstrap .venv from the pinned requirement files on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the browser tests drive Debian's chromium (never a downloaded browser)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test preview bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y --no-install-recommends chromium

run: $(STAMP)
	$(VENV)/bin/energytree serve examples/live-home.yaml --simulate --state-dir .state

test: $(STAMP) $(CHROMIUM)
	$(PY) -m ruff check .
	$(PY) -m pytest

preview: $(STAMP)
	$(VENV)/bin/energytree preview examples/small-business.yaml --now 2026-11-23T06:00:00Z --prices examples/prices/tou-day.csv

bench: $(STAMP)
	$(PY) -m bench
	$(PY) -m bench.endtoend

clean:
	rm -rf $(VENV) build *.egg-info
