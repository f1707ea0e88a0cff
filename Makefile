# Two commands do all the set-up on a fresh machine:
#   make run   creates .venv if missing, installs everything, opens the app on the demo
#   make test  the same set-up, then the test suite
# torch is installed first, pinned, so pip takes the CPU wheel instead of a CUDA build.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0

.PHONY: run test test-all contracts wheel lint format bench clean-venv help

help:
	@echo "make run       set up (first time) and open the Kiln app"
	@echo "make test      set up (first time) and run the fast test suite"
	@echo "make test-all  every test, including the slow ones"
	@echo "make contracts the import contracts (core headless, no import cycles)"
	@echo "make lint      ruff check + format check + import contracts"
	@echo "make bench     the benchmarks in bench/"
	@echo "make wheel     dist/kiln_lab-*.whl, to install Kiln outside the checkout"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/kiln app

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "not gpu"

# The headless promise, read from the source (pyproject.toml [tool.importlinter]).
contracts: $(STAMP)
	$(BIN)/lint-imports

# build/ goes first: setuptools copies build/lib into the wheel whole, so a module deleted
# since the last build would otherwise ship beside its replacement.
wheel: $(STAMP)
	rm -rf build dist/kiln_lab-*.whl
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation -w dist .

lint: contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/tui_bench.py
	$(BIN)/python bench/int8_speed.py
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/builds.py

clean-venv:
	rm -rf $(VENV)
