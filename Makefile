# Canvasflow: `make dev` runs the whole service on the embedded default; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install dev test test-fast lint format bench services system-deps clean

$(BIN)/canvasflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/canvasflow

# API, web admin, worker and ticker in one process: SQLite + in-memory broker, no servers.
dev: install
	$(BIN)/canvasflow db upgrade
	$(BIN)/canvasflow dev --port $(PORT)

# Every test: engine units, API on SQLite and PostgreSQL, engine on the embedded default and
# on RabbitMQ + PostgreSQL + Redis with real worker/beat processes, browser tests, faults.
test: install system-deps services
	$(BIN)/pytest -q -p no:randomly $(PYTEST_ARGS)

# The pure core only: no database, no broker.
test-fast: install
	$(BIN)/pytest -q tests/engine $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .

bench: install services
	$(BIN)/python bench/bench_validate.py
	$(BIN)/python bench/bench_engine.py

# Start PostgreSQL, RabbitMQ and Redis on this machine if they are installed but down.
services:
	@bash scripts/ensure-services.sh

# Headless Chromium and its driver for the browser tests (Debian packages).
system-deps:
	@bash scripts/ensure-system-deps.sh

clean:
	rm -rf $(VENV) .data .pytest_cache .hypothesis .ruff_cache *.egg-info
