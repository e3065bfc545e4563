# ktrdr — the two commands: `make run` (start the local stack) and `make test` (every test).
#
# Binaries land in $(TARGET_DIR); set CARGO_TARGET_DIR to share one warm build directory.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
# `make run PROFILE=debug` reuses the test build instead of compiling release binaries.
PROFILE ?= release
BIN_DIR := $(TARGET_DIR)/$(if $(filter debug dev,$(PROFILE)),debug,release)

.PHONY: help build build-release test lint fmt run stop status bench coverage clean python-stubs k8s-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: ## debug build of every binary
	$(CARGO) build --workspace --bins

build-release: ## release build of every binary
	$(CARGO) build --workspace --bins --release

test: build ## every test: unit, cross-service (real binaries on loopback), grpcurl walkthrough, Python client, k8s-check
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --no-fail-fast; \
	fi
	BIN_DIR=$(TARGET_DIR)/debug scripts/grpcurl-walkthrough.sh
	BIN_DIR=$(TARGET_DIR)/debug python3 clients/python/test_client.py
	$(CARGO) build --workspace --examples
	BIN_DIR=$(TARGET_DIR)/debug python3 services/ib-sim/tests/python_clients.py
	$(TARGET_DIR)/debug/examples/indicator_dump | python3 scripts/talib_parity.py
	$(TARGET_DIR)/debug/examples/backtest_parity $(TARGET_DIR)/backtest-parity >/dev/null
	python3 scripts/backtest_parity.py $(TARGET_DIR)/backtest-parity
	BIN_DIR=$(TARGET_DIR)/debug scripts/k8s-check.sh

k8s-check: build ## render every k8s overlay, validate it offline, check ports/probes/variables against the binaries
	BIN_DIR=$(TARGET_DIR)/debug scripts/k8s-check.sh

lint: ## cargo fmt --check, clippy -D warnings (also the CUDA build of strategy, training host and gateway), rustdoc -D warnings, buf lint
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p ktrdr-strategy -p ktrdr-training-host -p ktrdr-gateway --features ktrdr-strategy/cuda,ktrdr-training-host/cuda,ktrdr-gateway/cuda --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps
	cd proto && buf lint

fmt: ## format the Rust code
	$(CARGO) fmt --all

run: $(if $(filter debug dev,$(PROFILE)),build,build-release) ## build, start ib-sim, ib-host, data, training-host and gateway, then load, train and evaluate the example strategy
	BIN_DIR=$(BIN_DIR) scripts/stack.sh start
	@echo
	BIN_DIR=$(BIN_DIR) scripts/main-job.sh
	@echo
	@echo "The ktrdr stack is up (logs and pids in ./run). Try:"
	@echo "  $(BIN_DIR)/ktrdr health                      # the gateway, via KTRDR_GATEWAY_URL (default http://localhost:50051)"
	@echo "  $(BIN_DIR)/ktrdr config                      # how the gateway reaches data, training, IB"
	@echo "  $(BIN_DIR)/ktrdr data list                   # stored datasets; ktrdr --help lists every command"
	@echo "  grpcurl -plaintext localhost:50051 list"
	@echo "  grpcurl -plaintext localhost:50051 describe ktrdr.gateway.v1.GatewayService"
	@echo "  grpcurl -plaintext -d '{\"service\":\"ktrdr.data.v1.DataService\"}' localhost:50054 grpc.health.v1.Health/Check"
	@echo "Stop it with: make stop"

stop: ## stop the stack started by make run
	BIN_DIR=$(BIN_DIR) scripts/stack.sh stop

status: ## what the stack runs and its health
	BIN_DIR=$(BIN_DIR) scripts/stack.sh status

bench: ## run the benchmarks (release) and write BENCHMARKS.md
	scripts/bench.sh

coverage: ## line coverage of the unit and cross-service tests per crate, into COVERAGE.md (cargo llvm-cov; own instrumented build)
	scripts/coverage.sh

python-stubs: ## generate the Python gRPC stubs into clients/python/generated (needs grpcio-tools)
	clients/python/generate.sh

clean: ## remove build output and the run directory
	$(CARGO) clean
	rm -rf run
