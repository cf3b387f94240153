# Two commands set everything up on a fresh machine with Python 3.11+ and make:
#   make run    serve the API on an embedded PostgreSQL (http://127.0.0.1:8000/docs)
#   make test   run the whole test suite against a real PostgreSQL
SHELL := /bin/bash
PYTHON ?= python3
BACKEND := backend
VENV := $(BACKEND)/.venv
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
HOST ?= 127.0.0.1
PORT ?= 8000
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never

.PHONY: install run test e2e test-image fuzz lint format openapi migrate clean help

help:
	@echo "make run | make test | make e2e | make test-image | make fuzz | make lint | make format | make openapi | make migrate | make clean"
	@echo "make client | make client-check | make test-better-auth"

# uv is bootstrapped into the project's own venv with pip, so nothing global is needed.
$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is required (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) $(BACKEND)/uv.lock $(BACKEND)/pyproject.toml
	cd $(BACKEND) && $(abspath $(UV)) sync --frozen --inexact --quiet --python $(abspath $(VENV))/bin/python
	@touch $@

install: $(VENV)/.synced

run: install
	cd $(BACKEND) && exec .venv/bin/tasks-api run --host $(HOST) --port $(PORT)

# pyproject's addopts leave out the `e2e` tests; `make e2e` runs only them.
test: install
	cd $(BACKEND) && .venv/bin/pytest -q $(PYTEST_ARGS)

# Swagger UI, ReDoc and CORS in a real headless Chromium: Debian's (apt-get install chromium),
# never a browser download. CHROMIUM names another binary.
e2e: install
	cd $(BACKEND) && .venv/bin/pytest -q -m e2e tests/e2e $(PYTEST_ARGS)

# The production image built from backend/Dockerfile and run, and docker-compose.yml brought
# up and down (tests/image, specs/container.md). No registry is needed: the base images are
# local stand-ins (debootstrap's Debian, the uv wheel's binary), built once and kept by tag.
# Needs root for dockerd and debootstrap, as in CI: Debian's docker.io and debootstrap are
# installed when missing, and the tests start dockerd when none answers (and stop it again).
test-image: install
	@{ [ -x /usr/bin/docker ] && [ -x /usr/sbin/dockerd ] && [ -x /usr/sbin/debootstrap ]; } || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		export DEBIAN_FRONTEND=noninteractive; \
		$$SUDO apt-get update -qq && \
		$$SUDO apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null; }
	cd $(BACKEND) && .venv/bin/pytest -q -m image tests/image $(PYTEST_ARGS)

# The suite's schemathesis test (every operation of the live OpenAPI document, stateful run
# included) for much longer and with a random seed each run; see specs/fuzzing.md.
FUZZ_EXAMPLES ?= 300
FUZZ_STATEFUL_EXAMPLES ?= 200
FUZZ_STATEFUL_STEPS ?= 10
fuzz: install
	cd $(BACKEND) && FUZZ_SEED=random FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		FUZZ_STATEFUL_EXAMPLES=$(FUZZ_STATEFUL_EXAMPLES) FUZZ_STATEFUL_STEPS=$(FUZZ_STATEFUL_STEPS) \
		.venv/bin/pytest -q -p no:cacheprovider tests/contract/test_schemathesis.py $(PYTEST_ARGS)

lint: install
	cd $(BACKEND) && .venv/bin/ruff check . ../bench && .venv/bin/ruff format --check . ../bench

format: install
	cd $(BACKEND) && .venv/bin/ruff check --fix . && .venv/bin/ruff format .

openapi: install
	cd $(BACKEND) && .venv/bin/tasks-api openapi --output ../specs/contracts/openapi.yaml

migrate: install
	cd $(BACKEND) && .venv/bin/tasks-api migrate

clean:
	rm -rf $(VENV) $(BACKEND)/.pytest_cache $(BACKEND)/.ruff_cache

# Performance (issue #6). `make bench`: a throw-away PostgreSQL (CPU 1), 100 users x 1,000
# tasks seeded with COPY, the API served as in production (one uvicorn worker on CPU 0), and
# wrk (CPU 1) over every endpoint: req/s, p50/p95/p99, errors, RSS. `make bench-compare`
# also runs ../shared/bench against its limit server and the API on the same database.
# Knobs (make bench VAR=...): BENCH_SCENARIOS, BENCH_DURATION, BENCH_CONNECTIONS, BENCH_SOAK=300,
# BENCH_PROFILE=1, and BASE_URL=... TOKENS=... for a running deploy; see bench/README.md.
# `make bench-scale` (issue 14): the scenarios at 10,000 x 1,000, 100 x 1,000 and 2 x 100,000
# tasks, one table with the ratios (~25 min; BENCH_SIZES, BENCH_SCENARIOS to change them).
.PHONY: bench bench-compare bench-tools bench-scale
bench-tools: install
	@command -v wrk >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; }
	cd $(BACKEND) && $(abspath $(UV)) sync --frozen --inexact --quiet --group bench --python $(abspath $(VENV))/bin/python

bench: bench-tools
	$(VENV)/bin/python bench/run.py

bench-compare: bench-tools
	$(VENV)/bin/python bench/run.py --compare

bench-scale: bench-tools
	$(VENV)/bin/python bench/scale.py

# The suite with the API's engine behind PgBouncer in transaction mode (like Neon's pooled
# `-pooler` URL); migrations and the tests' own connections stay direct. Needs pgbouncer
# (apt-get install pgbouncer); the tests start and stop their own, on a free local port.
.PHONY: test-pgbouncer
test-pgbouncer: install
	@PATH="$$PATH:/usr/sbin" command -v pgbouncer >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq pgbouncer >/dev/null; }
	cd $(BACKEND) && TEST_PGBOUNCER=1 .venv/bin/pytest -q $(PYTEST_ARGS)

# The real clients (issue #11). `make client` regenerates the SPA's typed client
# (clients/typescript/src/schema.d.ts) from specs/contracts/openapi.yaml with the pinned
# openapi-typescript; `make client-check` proves it type-checks and that regenerating changes
# nothing. `make test-better-auth` runs Better Auth's own Node server (e2e/better-auth, pinned
# by its package-lock.json) in front of the API, and the typed client's example page in
# Debian's headless Chromium. Node 20+ and npm from the machine; packages from npm only.
CLIENT := clients/typescript
BETTER_AUTH := e2e/better-auth
NPM_CI := npm ci --no-audit --no-fund --loglevel=error
.PHONY: client client-check test-better-auth

$(CLIENT)/node_modules/.installed: $(CLIENT)/package-lock.json
	cd $(CLIENT) && $(NPM_CI)
	@touch $@

$(BETTER_AUTH)/node_modules/.installed: $(BETTER_AUTH)/package-lock.json
	cd $(BETTER_AUTH) && $(NPM_CI)
	@touch $@

client: $(CLIENT)/node_modules/.installed
	cd $(CLIENT) && npm run --silent generate

client-check: client
	git diff --exit-code -- $(CLIENT)/src/schema.d.ts || \
		{ echo "$(CLIENT)/src/schema.d.ts is stale: run make client and commit it"; exit 1; }
	@test -z "$$(git status --porcelain -- $(CLIENT)/src/schema.d.ts)" || \
		{ echo "$(CLIENT)/src/schema.d.ts is not committed"; exit 1; }
	cd $(CLIENT) && npm run --silent typecheck

test-better-auth: install $(CLIENT)/node_modules/.installed $(BETTER_AUTH)/node_modules/.installed
	cd $(CLIENT) && npm run --silent bundle
	cd $(BACKEND) && .venv/bin/pytest -q -m better_auth tests/better_auth $(PYTEST_ARGS)
