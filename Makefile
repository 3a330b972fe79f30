# Two commands on a fresh clone: `make demo` and `make test`. Each sets itself up:
# a virtual environment in .venv, rebuilt whenever the dependency files change.
PYTHON ?= python3
VENV := .venv
DEPS_HASH := $(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
PY := $(VENV)/bin/python

.PHONY: demo test lint format install clean bench

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[export,bench,dev]"
	touch $@

demo: $(STAMP)
	$(VENV)/bin/pixelwise demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	PIXELWISE_QUIET=1 $(VENV)/bin/pytest -q -n 2 --timeout=900

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
