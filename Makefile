# Two commands set up everything on a fresh machine:
#   make run   - install into .venv if needed, then run the main job on the embedded default
#   make test  - install into .venv if needed, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HWACCEL := $(VENV)/bin/hwaccel
# Every distribution of the monorepo: the core, plugins, pipelines and top-level backends.
DISTS := core $(wildcard plugins/*/pyproject.toml pipelines/*/pyproject.toml hwaccel-*/pyproject.toml)
DIST_DIRS := $(patsubst %/pyproject.toml,%,$(DISTS))
STAMP := $(VENV)/.hwaccel-installed
# torch is pinned to the CPU build (2.13.0 lies on this machine's disk): a plain `torch`
# would pull a multi-GB CUDA build. It is installed first so nothing else picks another.
OUT ?= build/run

.PHONY: install run test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard core/pyproject.toml plugins/*/pyproject.toml pipelines/*/pyproject.toml hwaccel-*/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet $(foreach d,$(DIST_DIRS),-e $(d)) -e '.[dev]'
	touch $(STAMP)

# The main job on the embedded default (the shipped MiniLM model, the CPU, DuckDB in the
# user cache folder): detect, classify, generate a test, run it, benchmark and store.
run: install
	$(HWACCEL) detect
	$(HWACCEL) classify minilm
	$(HWACCEL) generate minilm --backend cpu --out $(OUT)
	$(PY) -m pytest -q -p no:cacheprovider $(OUT)
	$(HWACCEL) benchmark minilm --backend cpu

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check core plugins pipelines hwaccel-* tests benchmarks

clean:
	rm -rf $(VENV) build
