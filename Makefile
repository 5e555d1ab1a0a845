# Rapport: `make run` starts the whole stack, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= python3.11
UV_VERSION := 0.13.9
# Use an installed uv if there is one, else install a pinned one into .tools/.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PYTEST := $(UV) run --frozen pytest

.PHONY: help install run test test-unit test-faults load lint format schemas clean bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.installed: $(UV) uv.lock pyproject.toml libs/events/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --all-packages
	@touch $@

install: .venv/.installed ## install Python, the workspace and the broker package

run: install ## start the broker and the four services on SQLite, in development (Ctrl-C stops all)
	@mkdir -p var/traces
	RAPPORT_ENV=development RAPPORT_TRACE_DIR=$(CURDIR)/var/traces $(UV) run --frozen honcho -f Procfile start

test: install ## run every test (unit, integration on SQLite and PostgreSQL, end to end, faults)
	$(PYTEST)

test-unit: install ## only the tests that need no broker
	$(PYTEST) -m "not faults and not e2e" -k "not integration"

test-faults: install ## only the fault-injection tests
	$(PYTEST) -m faults

load: install ## a minute of concurrent load on the four services: no errors, memory flat
	$(PYTEST) tests/test_load.py -m slow -s

lint: install ## ruff and mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/events/rapport_events services/*/rapport_*

format: install ## apply ruff's formatting and fixes
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

schemas: install ## export the event JSON Schemas to libs/events/schemas/
	$(UV) run --frozen python -m rapport_events.schemas

clean: ## remove local state (databases, traces)
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

.PHONY: traces compose-check compose-env

# What docker-compose.yml refuses to start without (the services run as production).
COMPOSE_SECRETS := RAPPORT_API_TOKEN CAMPAIGN_SIGNING_SECRET CAMPAIGN_WEBHOOK_SECRET
NEW_SECRET := python3 -c 'import secrets; print(secrets.token_urlsafe(32))'

traces: install ## print the latest trace of make run as a span tree (ARGS="--last 3", "--trace <id>")
	$(UV) run --frozen python tools/traces.py --dir $(CURDIR)/var/traces $(ARGS)

compose-check: ## validate docker-compose.yml (installs docker-compose with apt when missing and root)
	@if ! command -v docker-compose >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "docker-compose is not installed and this is not root: skipping the check"; exit 0; \
	  fi; \
	  apt-get install -y --no-install-recommends docker-compose \
	    || { apt-get update && apt-get install -y --no-install-recommends docker-compose; }; \
	fi; \
	: "the required secrets need only some value for the file to be checked"; \
	$(foreach name,$(COMPOSE_SECRETS) PROFILE_WRITE_KEYS,$(name)="$${$(name):-x}") \
	docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml is valid"

compose-env: ## write .env with fresh random secrets for docker-compose (an existing .env is kept)
	@if [ -e .env ]; then echo ".env exists: kept as it is"; exit 0; fi; \
	umask 077; { \
	  for name in $(COMPOSE_SECRETS); do echo "$$name=$$($(NEW_SECRET))"; done; \
	  echo "PROFILE_WRITE_KEYS='[\"$$($(NEW_SECRET))\"]'"; \
	} > .env && echo "wrote .env (keep it out of version control)"

bench: install ## benchmarks: a table of ratios against raw baselines, JSON under bench/results/ (ARGS=--quick)
	$(UV) run --frozen python -m bench $(ARGS)
