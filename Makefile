# `make demo` and `make test` do all the set-up on a fresh machine: a .venv, torch first (the
# local CPU wheel), then the project with its extras; the test tools (the dev extra) only for
# `make test` and `make lint` (the demo does not need them: ~10 s of a fresh `make demo`).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.dev-installed-stamp
DEMO_OUT ?= out/demo
# One BLAS thread per process: on small machines BLAS threads fight and run 2-10x slower.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: install install-dev demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[fast,images]' || $(PY) -m pip install --quiet -e '.[images]'
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

demo: install
	$(VENV)/bin/topovae demo --out $(DEMO_OUT)

PY_DIRS := topovae tests benchmarks examples

lint: install-dev
	$(VENV)/bin/ruff check $(PY_DIRS)
	$(VENV)/bin/ruff format --check $(PY_DIRS)

test: install-dev lint
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/bench_simp.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache *.egg-info
