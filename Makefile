# Track AI — the front door. Every workflow is a target with a `##` help line; CI runs these.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION ?= 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3.11
# uv: the one on PATH, else a private copy bootstrapped from PyPI into .tools/.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PY := .venv/bin/python
# `make test` runs in two pytest-xdist workers, the whole-stack tests (tests/e2e,
# tests/reliability) kept in one of them, the rest in the other: 15-17 min of pytest here,
# against 26-33 serially.
# The ports tests reserve for their processes come from trackai_testing.ports, a block per worker
# below the kernel's ephemeral range, so one worker's tests cannot take a port the other's stack
# reserved. TEST_WORKERS=0 runs the suite serially.
TEST_WORKERS ?= 2
XDIST = $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup)

.PHONY: help env console-assets run monitor cloudwatch test test-fast qa fuzz reliability reliability-long lint fmt migrate proto proto-check bench services clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml sandbox/pyproject.toml) | $(if $(filter .tools/bin/uv,$(UV)),.tools/bin/uv)
	$(UV) sync --frozen --all-packages --all-extras
	@touch $@

env: .venv/.synced ## Create/refresh the virtual environment from uv.lock

# The console's browser packages (htmx, its SSE extension, Chart.js): installed from npm by the
# lock file and copied into the served static dir (gitignored); never committed, never a CDN.
CONSOLE_FRONTEND := services/console/frontend
CONSOLE_VENDOR := services/console/src/trackai_console/static/vendor
$(CONSOLE_VENDOR)/.built: $(CONSOLE_FRONTEND)/package.json $(CONSOLE_FRONTEND)/package-lock.json
	cd $(CONSOLE_FRONTEND) && npm ci --no-audit --no-fund --silent \
	  && VENDOR_DIR=$(CURDIR)/$(CONSOLE_VENDOR) npm run --silent vendor
	@touch $@

console-assets: $(CONSOLE_VENDOR)/.built ## Install the console's browser packages (npm ci) into its static dir

services: env ## Make sure PostgreSQL and RabbitMQ are reachable (starts local ones if stopped)
	@$(PY) scripts/devstack.py ensure-services

migrate: services ## Create the database and apply every service's migrations
	@$(PY) scripts/devstack.py migrate

run: migrate console-assets ## Run every service and the sandbox fakes; Ctrl-C stops everything
	@$(PY) scripts/devstack.py run

monitor: env ## Prometheus + Alertmanager (Debian's packages) on the local stack, with the alarms loaded
	@$(PY) scripts/monitor.py check
	@$(PY) scripts/monitor.py run

cloudwatch: env ## Render the alarms as CloudFormation (deploy/cloudwatch/) and lint it with cfn-lint
	@$(PY) scripts/cloudwatch.py
	.venv/bin/cfn-lint deploy/cloudwatch/trackai-alarms.yaml

test: services console-assets ## The whole test suite (unit, integration, e2e, contract, charts and alarms, browser)
	@$(PY) scripts/devstack.py ensure-tools
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: env ## Unit tests only (no I/O)
	$(PY) -m pytest -m "not integration and not e2e and not slow" $(PYTEST_ARGS)

qa: env ## The release gate: the 15-item QA checklist on a fresh local stack, or QA_BASE_URL's
	$(PY) scripts/qa.py $(QA_ARGS)

FUZZ_EXAMPLES ?= 5000
fuzz: services ## Long property-based run: mutated gateway payloads and schemathesis cases must never get a 5xx (FUZZ_EXAMPLES=5000)
	TRACKAI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest --timeout=0 services/ingestion/tests/integration/test_webhook_fuzz.py services/ingestion/tests/integration/test_openapi_fuzz.py $(PYTEST_ARGS)

reliability: services ## The reliability suite alone (fault scenarios through the real processes; `make test` runs it too)
	$(PY) -m pytest tests/reliability $(PYTEST_ARGS)

reliability-long: services ## The reliability suite with the issue's real 10-minute Meta outage (scenario 14; ~15 min)
	TRACKAI_RELIABILITY_LONG=1 $(PY) -m pytest --timeout=0 -s tests/reliability/test_dispatcher_faults.py -k outage $(PYTEST_ARGS)

lint: env ## ruff, mypy (strict), import-linter contracts, buf lint, proto drift
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports
	.venv/bin/buf lint
	$(PY) scripts/gen_protos.py --check

fmt: env ## Format and auto-fix
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

proto: env ## Regenerate libs/protos from proto/ (commit the result)
	$(PY) scripts/gen_protos.py

proto-check: env ## Fail when generated code drifts from proto/
	$(PY) scripts/gen_protos.py --check

bench: services ## Benchmarks: baselines and service figures (prints a table)
	$(PY) -m bench $(BENCH_ARGS)

clean: ## Remove the virtual environment and caches
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
