# Quick start: `make run` (simulate the default scenario), `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint bench bench-daemon bench-soak bench-sweep clean

$(STAMP): pyproject.toml tools/qemu/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,dask]'
	$(BIN)/pip install --quiet -e tools/qemu
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/homenode simulate

test: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not qemu"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools

bench: $(STAMP)
	$(BIN)/python bench/sim_speed.py
	$(BIN)/python bench/decision_latency.py
	$(BIN)/python bench/quality.py

bench-daemon: $(STAMP)
	$(BIN)/python bench/daemon_overhead.py

bench-soak: $(STAMP)
	$(BIN)/python bench/soak.py

bench-sweep: $(STAMP)
	$(BIN)/python bench/sweep.py

clean:
	rm -rf $(VENV) homenode-out .pytest_cache .ruff_cache .hypothesis
