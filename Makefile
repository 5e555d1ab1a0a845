# Rapport: `make run` starts the whole stack, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= python3.11
UV_VERSION := 0.13.9
# Use an installed uv if there is one, else install a pinned one into .tools/.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PYTEST := $(UV) run --frozen pytest

.PHONY: help install run test chromium test-unit test-faults load lint format schemas clean bench replay

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.installed: $(UV) uv.lock pyproject.toml libs/events/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --all-packages
	@touch $@

install: .venv/.installed ## install Python, the workspace and the broker package

# The webhook sink of the Procfile: every outgoing webhook lands in var/webhooks/.
DEV_WEBHOOKS := http://127.0.0.1:1080

run: install console-assets ## start the broker, the five services and the console on SQLite, in development (Ctrl-C stops all)
	@mkdir -p var/traces
	RAPPORT_ENV=development RAPPORT_TRACE_DIR=$(CURDIR)/var/traces \
	  SUPPORT_SOCIAL_WEBHOOK_DEFAULT='{"url": "$(DEV_WEBHOOKS)/social-replies", "secret": "rapport-dev-webhook-secret"}' \
	  CAMPAIGN_SMS_WEBHOOK_URL=$(DEV_WEBHOOKS)/sms CAMPAIGN_PUSH_WEBHOOK_URL=$(DEV_WEBHOOKS)/push \
	  CAMPAIGN_SOCIAL_WEBHOOK_URL=$(DEV_WEBHOOKS)/social \
	  $(UV) run --frozen honcho -f Procfile start

# Most tests wait on a broker or a timer, not a core: three workers finish them in about half
# the time on two cores. The tests that start processes of their own (marker `processes`:
# service stacks, brokers, a browser) and time what they see run after them, one at a time,
# on a machine nobody else loads. Both phases always run; either failing fails the target.
TEST_WORKERS ?= 3
test: install sdk-deps console-assets chromium ## run every test (unit, integration on SQLite and PostgreSQL, end to end, faults, browser, real SDKs)
	@status=0; \
	$(PYTEST) -n $(TEST_WORKERS) -m "not processes" || status=$$?; \
	$(PYTEST) -m processes || status=$$?; \
	exit $$status

CHROMIUM := /usr/bin/chromium
chromium: ## install Debian's chromium for the browser tests (apt, when missing and root)
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "chromium is not installed and this is not root: the browser tests will fail"; exit 0; \
	  fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends chromium \
	    || { apt-get update && apt-get install -y --no-install-recommends chromium; }; \
	fi

test-unit: install ## the unit layer: no database, broker, server or process (under a minute)
	$(PYTEST) -m unit -n 2

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

.PHONY: traces tail compose-check compose-env

# What docker-compose.yml refuses to start without (the services run as production).
COMPOSE_SECRETS := RAPPORT_API_TOKEN CAMPAIGN_SIGNING_SECRET CAMPAIGN_WEBHOOK_SECRET PARTNER_SHARE_LEDGER_KEY CONSOLE_SESSION_SECRET
NEW_SECRET := python3 -c 'import secrets; print(secrets.token_urlsafe(32))'

traces: install ## print the latest trace of make run as a span tree (ARGS="--last 3", "--trace <id>")
	$(UV) run --frozen python tools/traces.py --dir $(CURDIR)/var/traces $(ARGS)

tail: install ## print the event log: offset, key, CloudEvents headers, JSON value (ARGS="--follow", "--limit 5", "--json")
	@$(UV) run --frozen python tools/tail_events.py $(ARGS)

compose-check: ## validate docker-compose.yml and its gateway's nginx config (installs docker-compose and nginx with apt when missing and root)
	@if ! command -v docker-compose >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "docker-compose or nginx is not installed and this is not root: skipping the check"; exit 0; \
	  fi; \
	  apt-get install -y --no-install-recommends docker-compose nginx-light \
	    || { apt-get update && apt-get install -y --no-install-recommends docker-compose nginx-light; }; \
	fi; \
	: "the required secrets need only some value for the file to be checked"; \
	$(foreach name,$(COMPOSE_SECRETS) PROFILE_WRITE_KEYS CONSOLE_OPERATORS KAFKA_KEY_ENCRYPTION_KEYS,$(name)="$${$(name):-x}") \
	docker-compose -f docker-compose.yml config -q || exit 1; \
	echo "docker-compose.yml is valid"; \
	: "the image includes conf.d/*.conf in its http block: so does this wrapper"; \
	dir=$$(mktemp -d); \
	printf 'pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp { include %s; }\n' \
	  "$$dir" "$$dir" "$(CURDIR)/deploy/compose/gateway.conf" > "$$dir/nginx.conf"; \
	nginx -q -t -c "$$dir/nginx.conf" && echo "deploy/compose/gateway.conf is valid"; \
	status=$$?; rm -rf "$$dir"; exit $$status

compose-env: ## write .env with fresh random secrets for docker-compose (an existing .env is kept)
	@if [ -e .env ]; then echo ".env exists: kept as it is"; exit 0; fi; \
	umask 077; { \
	  for name in $(COMPOSE_SECRETS); do echo "$$name=$$($(NEW_SECRET))"; done; \
	  echo "PROFILE_WRITE_KEYS='[\"$$($(NEW_SECRET))\"]'"; \
	  password=$$($(NEW_SECRET)); \
	  echo "CONSOLE_OPERATORS='[$$(echo "$$password" | $(UV) run --frozen python -m rapport_console.operators admin admin)]'"; \
	  echo "console operator admin, password: $$password (shown once)" >&2; \
	  echo "KAFKA_KEY_ENCRYPTION_KEYS='[\"k1:$$($(NEW_SECRET))\"]'"; \
	} > .env && echo "wrote .env (keep it out of version control)"

bench: install ## benchmarks: a table of ratios against raw baselines, JSON under bench/results/ (ARGS=--quick)
	$(UV) run --frozen python -m bench $(ARGS)

.PHONY: sdk-deps chromium

# The Segment SDKs profile's tests drive, from the committed lockfile.
SDK_TESTS := services/profile/tests/sdks

$(SDK_TESTS)/node_modules/.package-lock.json: $(SDK_TESTS)/package-lock.json
	cd $(SDK_TESTS) && npm ci --no-audit --no-fund

sdk-deps: $(SDK_TESTS)/node_modules/.package-lock.json chromium ## the JavaScript SDKs (npm ci) and Chromium the SDK tests use

replay: install ## rebuild SERVICE's projection from the log into a new database (STEP=swap INTO=<url> to finish)
	@test -n "$(SERVICE)" || { echo "name the service: make replay SERVICE=campaign"; exit 2; }
	RAPPORT_ENV=$${RAPPORT_ENV:-development} $(UV) run --frozen python -m rapport_$(subst -,_,$(SERVICE)).replay \
	  $(or $(STEP),build) $(if $(INTO),--into "$(INTO)") $(ARGS)

.PHONY: console-assets

# The console's browser libraries (htmx, Chart.js), from its committed lockfile.
CONSOLE := services/console

$(CONSOLE)/node_modules/.package-lock.json: $(CONSOLE)/package-lock.json
	cd $(CONSOLE) && npm ci --no-audit --no-fund

console-assets: $(CONSOLE)/node_modules/.package-lock.json ## the console's htmx and Chart.js (npm ci)
