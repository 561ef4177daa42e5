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

.PHONY: lock install deploy-tools up test test-unit test-integration lint format proto proto-check bench demo clean

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

## Tools the deployment checks run (tests/deployment): Debian's Prometheus (static binaries,
## unpacked, not installed) and the compose specification's JSON schema (from docker-compose 1.29).
PROMETHEUS := $(TOOLS)/prometheus/usr/bin/prometheus
COMPOSE_SPEC := $(TOOLS)/compose-spec/compose_spec.json
deploy-tools: $(PROMETHEUS) $(COMPOSE_SPEC)

$(PROMETHEUS):
	rm -rf $(TOOLS)/prometheus && mkdir -p $(TOOLS)/prometheus
	cd $(TOOLS)/prometheus && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; }
	dpkg-deb -x $(TOOLS)/prometheus/prometheus_*.deb $(TOOLS)/prometheus && rm $(TOOLS)/prometheus/prometheus_*.deb
	touch $@

$(COMPOSE_SPEC): $(UV)
	rm -rf $(TOOLS)/compose-spec && mkdir -p $(TOOLS)/compose-spec
	$(TOOLS)/bin/pip download --quiet --no-deps docker-compose==1.29.2 -d $(TOOLS)/compose-spec
	$(TOOLS)/bin/python -c "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('compose/config/compose_spec.json'))" $(TOOLS)/compose-spec/docker_compose-1.29.2-py2.py3-none-any.whl $@
	rm $(TOOLS)/compose-spec/*.whl

## Run the whole platform (embedded Kafka-compatible broker and PostgreSQL unless configured).
up: install
	$(BIN)/maillage up

## Run every test (unit + integration against a real broker and PostgreSQL).
test: install deploy-tools
	$(BIN)/pytest

test-unit: install deploy-tools
	$(BIN)/pytest -m "not integration"

test-integration: install deploy-tools
	$(BIN)/pytest -m integration

lint: install proto-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/common/src libs/common/tests libs/contracts/tests tools/devstack/src tools/devstack/tests tools/demo/src tools/demo/tests services/*/src tests
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

## A region in a box: the platform plus a simulated week of a Grand Est-shaped network.
## Knobs: make demo DEMO_ARGS="--sites 40 --days 3 --speed 0 --seed 7"
demo: install
	$(BIN)/maillage-demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache
