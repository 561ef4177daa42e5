# Maillage — every target bootstraps what it needs (uv in .tools/, the workspace in .venv/).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
export UV_NO_PROGRESS := 1
PROJECT_FILES := pyproject.toml $(wildcard libs/*/pyproject.toml tools/*/pyproject.toml services/*/pyproject.toml)

.PHONY: lock install up test test-unit test-integration lint format proto proto-check bench demo clean

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) uv.lock $(PROJECT_FILES)
	$(UV) sync --all-packages --locked
	touch $@

## Re-resolve dependencies after editing a pyproject.toml (install refuses a stale lock).
lock: $(UV)
	$(UV) lock

## Run the whole platform (embedded Kafka-compatible broker and PostgreSQL unless configured).
up: install
	$(BIN)/maillage up

## Run every test (unit + integration against a real broker and PostgreSQL).
test: install
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest -m "not integration"

test-integration: install
	$(BIN)/pytest -m integration

lint: install proto-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/common/src libs/common/tests libs/contracts/tests tools/devstack/src tools/devstack/tests services/*/src tests
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Regenerate libs/contracts from proto/ (committed); proto-check fails when they drift.
proto: install
	$(BIN)/python proto/generate.py

proto-check: install
	$(BIN)/python proto/generate.py --check

bench: install
	$(BIN)/maillage bench

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache
