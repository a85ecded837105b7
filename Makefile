# Two entry points: `make demo` (the main job on the built-in Adult data) and `make test`.
# Both create/upgrade ./.venv on a fresh machine. torch is pinned *before* anything that pulls it,
# otherwise pip resolves a multi-GB CUDA build.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.core: $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.all: $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[all]"
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(VENV)/bin/pe-tabular demo --out demo-out

test: $(VENV)/.all
	$(PY) -m pytest -q

lint: $(VENV)/.all
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) demo-out build *.egg-info
