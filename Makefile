# zhengna developer entry points. `make dev` runs the platform; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NEXTEST := $(shell command -v cargo-nextest >/dev/null 2>&1 && echo yes)

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## Install and start what is missing (PostgreSQL, tansu, Node packages)
	deploy/local/setup.sh

dev: setup web ## Run the whole platform locally with a seeded KB and demo logins (Ctrl-C stops it)
	cargo build --workspace --bins
	cargo run -q -p xtask -- dev

test: setup ## Run all tests (unit, service, integration, grpc-web) against real PostgreSQL and a real broker
	@# Databases left by interrupted earlier runs (tests drop their own when they finish).
	@psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'zt\_%'" 2>/dev/null \
	  | while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$$db\" WITH (FORCE)"; done || true
	$(MAKE) --no-print-directory web
	cargo build --workspace --all-targets
ifeq ($(NEXTEST),yes)
	cargo nextest run --workspace --profile $(if $(CI),ci,default)
else
	cargo test --workspace
endif

web: ## Build the taxpayer web (web/dist), served by the gateway
	cd web && npm run build

e2e: ## Browser tests against a running `make dev` (E2E_BASE_URL to point elsewhere)
	cd web && npm run e2e

lint: ## rustfmt, clippy and buf lint
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	tools/node_modules/.bin/buf lint

codegen: ## Regenerate crates/proto/src/gen from proto/
	cargo run -q -p xtask -- codegen

bench: setup ## Run benchmarks and print their figures (see docs/benchmarks.md)
	cargo run -q -p zhengna-messaging --example bench_push

bench-stream: ## Open Subscribe streams and delivery rate/latency through the gateway (see docs/benchmarks.md)
	ZHENGNA_TEST_DB_CONNECTIONS=10 cargo run --release -q -p zhengna-integration-tests --example bench_stream -- --streams 20000 --rate 1500 --seconds 20

bench-answer: ## Answer quality (top1/top3/confident_wrong) and engine speed; FILE=path.jsonl evaluates one file
	cargo run --release -q -p zhengna-answer --example bench_answer -- $(FILE)

.PHONY: help setup dev test web e2e lint codegen bench bench-stream bench-answer
