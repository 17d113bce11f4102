# Two commands on a fresh machine: `make demo` and `make test`.
# Everything installs into .venv; system servers (PostgreSQL, Redis, wrk, Chromium; valgrind for bench) come from
# Debian's packages via scripts/install-system-deps.sh. llama-cpp-python builds from source once
# (~5 minutes on two cores); pip keeps the built wheel in its cache so later installs reuse it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# A portable llama.cpp build: -march=native builds crashed here on CPUs that advertise AMX.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: demo test install system-deps lint clean bench

demo: install
	$(BIN)/tokenomy demo

test: install system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

# ruff (lint: package, tests, benchmarks; format: package) and mypy; `make test` runs it first.
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: install
	bash scripts/install-system-deps.sh --bench
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .tokenomy .pytest_cache
