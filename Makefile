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

.PHONY: install run test browser lint clean

install: $(STAMP)

# Every distribution is installed editable; setuptools writes each one's src folder as a plain
# .pth path entry. The root meta-package holds no module: installed editable, it would only
# add an import hook (a meta-path finder with nothing to find) that every Python started in
# the venv imports, about 8 ms of `python -c pass`; it is installed as a plain wheel.
# VERSION is the one place the version is written: every pyproject's version and the pins
# between them (hwaccel-core==X) are set from it first (.ci/sync_version.py).
$(STAMP): VERSION pyproject.toml $(wildcard core/pyproject.toml plugins/*/pyproject.toml pipelines/*/pyproject.toml hwaccel-*/pyproject.toml)
	$(PYTHON) .ci/sync_version.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet $(foreach d,$(DIST_DIRS),-e $(d)) '.[dev]'
	touch $(STAMP)

# The main job on the embedded default: the compatibility matrix of every pipeline's example
# models (tiny ones and the shipped MiniLM) on every detected backend, stored in DuckDB (the
# user cache folder), then greedy generation of the text examples on cpu and OpenVINO
# (examples/llm-generation.yaml), then the reports (Markdown, JSON, HTML) in $(OUT). The converted-graph
# backends, which run on this CPU in emulation, measure one example per pipeline (tiny:gpt2
# for text) with one timed call after the cold one: the web's WebAssembly provider, every job
# in one shared browser, and QNN's HTP, which on x86_64 is Qualcomm's simulator of it (11 s
# for a call of tiny Whisper). WebGPU runs on SwiftShader, a software GPU that takes 3-8 s per
# call of the other pipelines' examples: it measures the text example only (the other eight
# take 5 more minutes: hwaccel matrix --backends web:webgpu $(CONVERTED)).
CONVERTED := --models tiny:gpt2 --pipelines vision vision-text audio multimodal diffusion moe \
  state-space rag --iterations 1 --warmup 0 --min-seconds 0
run: install
	$(HWACCEL) detect
	$(HWACCEL) matrix --tests-dir $(OUT)/tests --skip-backends web qnn
	$(HWACCEL) matrix --tests-dir $(OUT)/tests --backends web:wasm $(CONVERTED)
	$(HWACCEL) matrix --tests-dir $(OUT)/tests --backends web:webgpu web:webnn --models tiny:gpt2 \
	  --iterations 1 --warmup 0 --min-seconds 0
	$(HWACCEL) matrix --tests-dir $(OUT)/tests --backends qnn $(CONVERTED)
	$(HWACCEL) run examples/llm-generation.yaml
	$(HWACCEL) report --output-dir $(OUT)

test: install browser
	$(PY) -m pytest -q

# Debian's Chromium, for the check that opens the HTML report and the web backend's tests
# (never a downloaded browser), and npm, which fetches onnxruntime-web and the WebNN-capable
# Chromium from the npm registry: installed with apt-get when missing and this runs as root.
browser:
	@test -x /usr/bin/chromium && command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      $$(test -x /usr/bin/chromium || echo chromium) $$(command -v npm >/dev/null || echo npm) >/dev/null; \
	  else echo "note: chromium or npm is missing; the browser checks will skip or fail"; fi; }

lint: install
	$(VENV)/bin/ruff check core plugins pipelines hwaccel-* tests benchmarks

clean:
	rm -rf $(VENV) build
