# opex-bridge — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PYTHON) deploy/local/stack.py

.PHONY: help install run test lint typecheck unit integration stack-up stack-down stack-status stack-reset topics migrate clean sandbox bench-sandbox

help: ## Show the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	@echo "installing uv (Python package manager) for $(PYTHON)"
	$(PYTHON) -m pip install --user --quiet uv || $(PYTHON) -m pip install --quiet --break-system-packages uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced ## Create the virtualenv with locked packages

run: install ## Start Kafka, PostgreSQL, the sandbox and every service, then the demo (OPEXBRIDGE_DEMO=0: no demo); Ctrl-C stops them all
	$(PY) -m opexbridge.devrun

.PHONY: demo
demo: install ## The demo alone, against a suite already running (make run with OPEXBRIDGE_DEMO=0)
	$(PY) -m opexbridge.demo

test: install lint typecheck ## Lint, type-check, and run every test against real Kafka and PostgreSQL
	$(PY) -m pytest -q

lint: install ## ruff (lint and format check)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install ## mypy --strict
	$(PY) -m mypy shared services opexbridge tests

unit: install ## Only the fast tests (no broker, no database)
	$(PY) -m pytest -q tests/unit

integration: install ## Only the tests against the real broker and database
	$(PY) -m pytest -q tests/integration

stack-up: ## Start (or reuse) the local Kafka and PostgreSQL
	$(STACK) up

stack-down: ## Stop the local Kafka and PostgreSQL
	$(STACK) down

stack-status: ## Show the local Kafka and PostgreSQL
	$(STACK) status

stack-reset: ## Stop both and delete their data
	$(STACK) reset

topics: install ## Create missing topics, report drift
	$(PY) -m opexbridge.cli topics apply

migrate: install ## Apply every service's migrations
	$(PY) -m opexbridge.cli migrate

clean: ## Remove the virtualenv and caches (keeps .run data)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

sandbox: install ## Run the OPEX sandbox alone (SANDBOX_PORT, default 8082)
	$(PY) -m services.opex_sandbox

bench-sandbox: install ## Sandbox benchmarks: matching and HTTP orders/s (writes .bench/sandbox.json)
	$(PY) -m services.opex_sandbox.bench

.PHONY: notifier bench-notifier

notifier: install ## Run the notifier alone (WebSocket + REST snapshots on 127.0.0.1:8000)
	$(PY) -m services.notifier

bench-notifier: install ## Notifier bench (idle connections, events/s, latency) -> .bench/notifier.json
	$(PY) -m services.notifier.bench

.PHONY: bench-risk
bench-risk: install ## Risk engine: decisions/s, latency, bare relay baseline -> .bench/risk_engine.json
	$(PY) -m services.risk_engine.bench

.PHONY: user-sync bench-users
user-sync: install ## Run user_sync alone (needs Kafka, PostgreSQL and OPEX or the sandbox)
	$(PY) -m services.user_sync

bench-users: install ## user_sync: 1,000 users against the sandbox -> .bench/user_sync.json
	$(PY) -m services.user_sync.bench

.PHONY: docs docs-check
docs: install ## Regenerate docs/asyncapi/*.json and deploy/k8s/base/kafka-topics.yaml from the code
	$(PY) -m opexbridge.cli generate all

docs-check: install ## Fail when a generated file differs from what the code generates
	$(PY) -m opexbridge.cli generate all --check

.PHONY: bench-api
bench-api: install ## Trading REST API: accepted POSTs/s, p99 at 500/s, bare Kafka baseline -> .bench/rest_api.json
	$(PY) -m services.notifier.bench_api

.PHONY: order-gateway bench-gateway
order-gateway: install ## Run the order gateway alone (needs Kafka, PostgreSQL, OPEX or the sandbox)
	$(PY) -m services.order_gateway

bench-gateway: install ## Order gateway: approved orders placed and accepted per second, p99 at 500/s, vs direct -> .bench/order_gateway.json
	$(PY) -m services.order_gateway.bench

.PHONY: bench chaos
bench: install ## Whole pipeline vs bare relay and direct HTTP, then every bench-* -> .bench/pipeline.json (BENCH_ARGS=--quick)
	$(PY) -m opexbridge.bench_pipeline $(BENCH_ARGS)

chaos: install ## 10,000 orders under kills and Kafka/PostgreSQL/OPEX faults; checks nothing lost -> .bench/chaos.json
	$(PY) -m opexbridge.chaos $(CHAOS_ARGS)
