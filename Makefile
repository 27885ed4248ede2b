# `make demo` and `make test` do all the set-up on a fresh machine: a .venv, torch first (the
# local CPU wheel), then the project with its extras; the test tools (the dev extra) only for
# `make test` and `make lint` (the demo does not need them: ~10 s of a fresh `make demo`).
# pip's --no-compile: byte-compiling every module of torch and the rest at install took 40 of
# the set-up's 75 s; the demo's one process compiles what it imports instead (in memory where
# PYTHONDONTWRITEBYTECODE is set: ~2 s). The test suite starts many processes, so `make test`'s
# set-up byte-compiles everything once, on every core (~23 s; some packages ship test files
# that are not valid Python 3, hence `|| true`).
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
	$(PY) -m pip install --quiet --no-compile torch==2.13.0
	$(PY) -m pip install --quiet --no-compile -e '.[fast,images]' \
		|| $(PY) -m pip install --quiet --no-compile -e '.[images]'
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --no-compile -e '.[dev]'
	$(PY) -m compileall -q -j 0 $(VENV)/lib topovae > /dev/null || true
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
