# merchantagg — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
GO ?= go

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/merchantagg
	$(GO) build -o bin/merchantagg ./cmd/merchantagg

.PHONY: demo
demo: build ## Seed a demo dataset and serve it on :8080 (idempotent)
	scripts/demo.sh

.PHONY: demo-clean
demo-clean: ## Drop the demo's databases and .demo/ (stop the demo first)
	scripts/demo-clean.sh

.PHONY: generate
generate: ## Regenerate gen/ from openapi.yaml
	$(GO) generate ./gen

.PHONY: verify
verify: ## Fail if gen/ is stale or code is unformatted
	$(GO) generate ./gen
	git diff --exit-code -- gen/ || { echo "gen/ is stale: run make generate and commit" >&2; exit 1; }
	@test -z "$$(gofmt -l cmd internal gen tests sql *.go)" || { gofmt -l cmd internal gen tests sql *.go; exit 1; }

.PHONY: lint
# gofmt and go vet only: a cold build of staticcheck took 1m38s on the CI's 2 cores, over the
# minute lint may add to CI (golangci-lint builds far more).
lint: ## gofmt and go vet
	@test -z "$$(gofmt -l cmd internal gen tests sql *.go)" || { gofmt -l cmd internal gen tests sql *.go; exit 1; }
	$(GO) vet ./...

ORDERS ?= 1000000
.PHONY: bench
bench: build ## Benchmark at ORDERS orders (default 1M; BENCHMARKS.md has 1M and 10M): writes BENCHMARKS.md, bench/
	eval "$$(scripts/ensure-postgres.sh)" && $(GO) run ./cmd/bench -orders $(ORDERS) -bin bin/merchantagg $(BENCH_FLAGS)

.PHONY: test
test: verify lint ## The whole test suite against a real PostgreSQL (started if needed)
	eval "$$(scripts/ensure-postgres.sh)" && $(GO) test -count=1 -timeout 10m ./...
