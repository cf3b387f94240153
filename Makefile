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

.PHONY: install run test lint format openapi migrate clean help

help:
	@echo "make run | make test | make lint | make format | make openapi | make migrate | make clean"

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

test: install
	cd $(BACKEND) && .venv/bin/pytest -q $(PYTEST_ARGS)

lint: install
	cd $(BACKEND) && .venv/bin/ruff check . && .venv/bin/ruff format --check .

format: install
	cd $(BACKEND) && .venv/bin/ruff check --fix . && .venv/bin/ruff format .

openapi: install
	cd $(BACKEND) && .venv/bin/tasks-api openapi --output ../specs/contracts/openapi.yaml

migrate: install
	cd $(BACKEND) && .venv/bin/tasks-api migrate

clean:
	rm -rf $(VENV) $(BACKEND)/.pytest_cache $(BACKEND)/.ruff_cache
