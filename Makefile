# `make demo` and `make test` do all the set-up on a fresh machine: a .venv, torch first (the
# local CPU wheel), then the project with its extras.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= out/demo
# One BLAS thread per process: on small machines BLAS threads fight and run 2-10x slower.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,fast,images]' || $(PY) -m pip install --quiet -e '.[dev,images]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/topovae demo --out $(DEMO_OUT)

PY_DIRS := topovae tests benchmarks examples

lint: install
	$(VENV)/bin/ruff check $(PY_DIRS)
	$(VENV)/bin/ruff format --check $(PY_DIRS)

test: install lint
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/bench_simp.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache *.egg-info
