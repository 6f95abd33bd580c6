# Gantry: `make run` starts everything and runs the demo; `make test` runs the test suite.
# The scripts under scripts/ do the work; see each one's header for its options.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The toolchain lives in /opt/swift on the project's machines; find it even when PATH lacks it.
export PATH := $(PATH):/opt/swift/usr/bin

CORPUS_DEFAULT := $(abspath ../shared/corpus)
TEST_DATABASE_URL ?= postgres://gantry:gantry@127.0.0.1:5433/postgres

.PHONY: help deps build generate check-generated run demo test bench stop stop-services status clean-state \
        postgres-start registry-start services-start

help:
	@echo "make run          deps, PostgreSQL, build, services, registry, then 'gantry demo'"
	@echo "make test         deps, PostgreSQL, registry, generated-code check, build, swift test"
	@echo "make stop         stop services, registry and PostgreSQL (make stop-services: only the services)"
	@echo "make status       what is running"
	@echo "make clean-state  stop everything and delete .run/ (databases, registry data, secrets)"
	@echo "make deps | build | generate | check-generated | bench"

deps:
	@scripts/deps.sh

build:
	swift build

generate:
	@scripts/generate.sh

check-generated:
	@scripts/generate.sh --check

postgres-start:
	@scripts/postgres.sh start

registry-start:
	@scripts/registry.sh start

# Services start before the registry so that its push notifications find ingestion listening.
run: deps postgres-start build
	@GANTRY_SKIP_BUILD=1 scripts/services.sh start
	@scripts/registry.sh start
	@scripts/demo.sh

demo:
	@scripts/demo.sh

# The tests share one PostgreSQL server (and one registry on 127.0.0.1:5000). Swift Testing runs them
# concurrently; the width is bounded at 4 because many suites start whole service stacks, and on a
# 2-core machine unbounded concurrency starves them past their timeouts. Under CI (CI=true) the
# corpus must exist, and the server logs are printed when the tests fail.
test: deps postgres-start registry-start check-generated
	@set -euo pipefail; \
	if [[ -z "$${GANTRY_CORPUS:-}" && -d "$(CORPUS_DEFAULT)" ]]; then export GANTRY_CORPUS="$(CORPUS_DEFAULT)"; fi; \
	if [[ "$${CI:-}" == true && ! -d "$${GANTRY_CORPUS:-/nonexistent}" ]]; then \
	    echo "error: CI=true but the corpus is missing (set GANTRY_CORPUS or put shared/corpus beside the repo)" >&2; exit 1; fi; \
	export GANTRY_TEST_DATABASE_URL="$(TEST_DATABASE_URL)"; \
	export GANTRY_TEST_REGISTRY="$${GANTRY_TEST_REGISTRY:-127.0.0.1:5000}"; \
	echo "GANTRY_CORPUS=$${GANTRY_CORPUS:-<absent: corpus tests skip>} GANTRY_TEST_DATABASE_URL=$$GANTRY_TEST_DATABASE_URL"; \
	swift build --build-tests; \
	status=0; swift test --experimental-maximum-parallelization-width 4 || status=$$?; \
	if [[ $$status -ne 0 && "$${CI:-}" == true ]]; then \
	    for f in .run/postgres.log .run/registry.log; do \
	        [[ -e "$$f" ]] && { echo "---- last lines of $$f ----"; tail -n 40 "$$f"; }; done; fi; \
	exit $$status

bench:
	@scripts/bench.sh
	@scripts/bench-kb.sh

status:
	@scripts/postgres.sh status || true
	@scripts/registry.sh status || true
	@scripts/services.sh status || true

stop:
	@scripts/services.sh stop
	@scripts/registry.sh stop
	@scripts/postgres.sh stop

stop-services:
	@scripts/services.sh stop

clean-state: stop
	@scripts/postgres.sh destroy
	rm -rf .run
