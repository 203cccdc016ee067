# Personal pension backend -- developer entry points.
#   make run         start all four services embedded on http://127.0.0.1:8000 (prints dev tokens)
#   make test        full test suite against a real PostgreSQL + Kafka (started and stopped for you)
#   make infra-up    start local PostgreSQL (127.0.0.1:55432) and Kafka (127.0.0.1:19092)
#   make infra-down  stop them and delete their data
#   make bench       the benchmark of issue 7 on its own PostgreSQL + Kafka (QUICK=1: the short run)
#   make chaos       fault injection under load, 10 min, on its own PostgreSQL + Kafka (QUICK=1: 90 s)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

INFRA_DIR := $(or $(PENSION_INFRA_DIR),$(CURDIR)/.infra)
PG_PORT := $(or $(PENSION_PG_PORT),55432)
KAFKA_PORT := $(or $(PENSION_KAFKA_PORT),19092)
# uv installed by scripts/ensure-uv.sh (when it was not on PATH) lives here.
export PATH := $(INFRA_DIR)/bin:$(PATH)
export PENSION_INFRA_DIR := $(INFRA_DIR)

PYTEST_ARGS ?=

.PHONY: help sync run test bench chaos tools infra-up infra-down compose-config clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

sync:
	scripts/sync.sh

run: sync
	uv run pension run

test:
	scripts/test.sh $(PYTEST_ARGS)

bench:
	scripts/bench.sh $(if $(QUICK),--quick)

chaos:
	scripts/chaos.sh $(if $(QUICK),--quick) $(CHAOS_ARGS)

tools:
	scripts/ensure-tools.sh

infra-up:
	deploy/local/postgres.sh start
	deploy/local/kafka.sh start
	@echo
	@echo "# local infrastructure is up; for tests / development:"
	@echo "export PENSION_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$(PG_PORT)/postgres"
	@echo "export PENSION_TEST_KAFKA=127.0.0.1:$(KAFKA_PORT)"
	@echo "export PENSION_KAFKA_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT)"
	@echo "export PENSION_REQUIRE_INFRA=1"
	@echo "# stop with: make infra-down"

infra-down:
	deploy/local/kafka.sh stop
	deploy/local/postgres.sh stop

compose-config:
	PENSION_DB_PASSWORD=$${PENSION_DB_PASSWORD:-dummy} PENSION_PII_KEY=$${PENSION_PII_KEY:-dummy} PENSION_INSURANCE_REGISTRY_URL=$${PENSION_INSURANCE_REGISTRY_URL:-http://registry} PENSION_PAYMENT_ENDPOINT_URL=$${PENSION_PAYMENT_ENDPOINT_URL:-http://payments} docker compose -f docker-compose.yml config --quiet && echo "docker-compose.yml: OK"

clean: infra-down
	rm -rf $(INFRA_DIR)/kafka/data $(INFRA_DIR)/pg
