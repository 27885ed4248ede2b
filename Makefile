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
	$(PY) -m pip install --quiet -e '.[dev,fast]' || $(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	mkdir -p $(DEMO_OUT)
	$(VENV)/bin/topovae solve --problem mbb --nelx 150 --nely 50 --volfrac 0.5 --rmin 3 \
		--out $(DEMO_OUT)/mbb.png --json $(DEMO_OUT)/mbb.json
	$(VENV)/bin/topovae solve --problem l-bracket --nelx 80 --nely 80 --volfrac 0.4 --rmin 2 \
		--filter heaviside --out $(DEMO_OUT)/l-bracket.png --json $(DEMO_OUT)/l-bracket.json
	$(VENV)/bin/topovae generate --distribution mixed --size 32x32 -n 16 --seed 0 --overwrite \
		--out $(DEMO_OUT)/data.h5
	$(VENV)/bin/topovae info $(DEMO_OUT)/data.h5
	$(VENV)/bin/topovae show $(DEMO_OUT)/data.h5 -n 16 --out $(DEMO_OUT)/data.png

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
