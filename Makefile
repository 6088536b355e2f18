# Wrale Fleet: every target installs what it needs into .venv first (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip --disable-pip-version-check
UI_VENDOR := src/wrale/user/ui/static/vendor
UI_STAMP := $(UI_VENDOR)/.installed

.PHONY: demo test soak check bench format install install-dev ui-assets clean migration package

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml $(UI_STAMP) | $(BIN)/python
	$(PIP) install --quiet -e '.[central]'
	@touch $@

$(DEV_STAMP): pyproject.toml $(UI_STAMP) | $(BIN)/python
	$(PIP) install --quiet -e '.[dev]'
	@touch $@ $(RUN_STAMP)

# The dashboard's front-end packages: npm installs exactly what package-lock.json pins,
# then the files the pages load are copied next to the dashboard's own static files.
$(UI_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(UI_VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/uplot/dist/uPlot.iife.min.js \
		node_modules/uplot/dist/uPlot.min.css $(UI_VENDOR)/
	@touch $@

ui-assets: $(UI_STAMP)

install: $(RUN_STAMP)
install-dev: $(DEV_STAMP)

## demo: central server + 24 simulated boards in racks + scripted incidents; prints URL and login
demo: $(RUN_STAMP)
	$(BIN)/wrale demo

## check: lint, format, strict types, layer contracts
check: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: the quality gates, then the whole suite on TEST_WORKERS processes, the soak cases
## in their bounded form (soak: make soak)
# 3 workers on 2 cores: many tests wait on processes, sockets and servers (tests/README.md).
# loadgroup keeps a module's shared world (browser fleet, Debian root) on one worker and
# hands out the rest one test at a time, slow ones first (tests/conftest.py; it also puts
# the group on the test's id itself, which xdist 3.8 fails to do under pytest 9).
TEST_WORKERS ?= 3
# The e2e network cut: 30 s in `make test` (120 s is the soak's default).
WRALE_E2E_CUT_S ?= 30
test: check
	WRALE_E2E_CUT_S=$(WRALE_E2E_CUT_S) $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

## soak: the long soak cases in full (WRALE_E2E_CUT_S=120 s network cut), nothing else
soak: $(DEV_STAMP)
	WRALE_E2E_CUT_S=120 $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup -m soak

## bench: benchmark figures, printed and written to bench/results/latest.json
bench: $(DEV_STAMP)
	$(BIN)/python bench/run.py

## package: the device install as a .deb for Raspberry Pi OS Bookworm in dist/ (ARCH=arm64|amd64)
ARCH ?= arm64
package: | $(BIN)/python
	ARCH=$(ARCH) PYTHON=$(BIN)/python OUT=dist packaging/build-deb.sh

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules $(UI_VENDOR) .mypy_cache .ruff_cache .pytest_cache .hypothesis wrale-data

## migration: write an Alembic revision for model changes, e.g. make migration m="add racks"
migration: $(DEV_STAMP)
	d=$$(mktemp -d) && $(BIN)/python -c "import sys; from pathlib import Path; from wrale.fleet.brain.schema import autogenerate; autogenerate(sys.argv[1], Path(sys.argv[2]))" "$(m)" "$$d"; rm -rf "$$d"
	$(BIN)/ruff format -q src/wrale/fleet/brain/migrations && $(BIN)/ruff check --fix -q src/wrale/fleet/brain/migrations
