# Every target installs what it needs: the venv, the pinned Python packages, redis-server
# (apt-get, when missing), for the tests Debian's chromium (apt-get, when missing; the browser
# tests drive it with playwright) and, for the demo and the bench, the fauxqs SQS emulator (npm).
# The API's browser assets (GraphiQL, React, Swagger UI) are checked in: no npm step for them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
FAUXQS := .tools/node_modules/fauxqs/dist/cli.js
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
MARKS := $(if $(SLOW),,-m "not slow")

.PHONY: all deps redis chromium fauxqs test lint typecheck unit demo bench constraints clean

all: test

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	touch $@

deps: $(STAMP) redis

redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server missing: installing it with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

$(FAUXQS):
	@command -v npm >/dev/null 2>&1 || { \
	  echo "npm missing: installing nodejs and npm with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }
	npm install --silent --no-audit --no-fund --prefix .tools fauxqs@1.9.2

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "chromium missing: installing it with apt-get (browser tests)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

fauxqs: $(FAUXQS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The end-to-end tests run twice: on moto (the reference SQS API) and on fauxqs, which, like
# AWS, ignores a delete with a stale receipt handle.
test: deps chromium fauxqs lint
	$(BIN)/pytest $(MARKS) $(PYTEST_ARGS)
	DEVSTACK_TEST_SQS=fauxqs $(BIN)/pytest $(MARKS) tests/test_worker.py tests/test_lifecycle.py $(PYTEST_ARGS)

demo: deps fauxqs
	$(BIN)/python -m dispatcher demo

bench: deps fauxqs
	$(BIN)/python -m bench

constraints: $(STAMP)
	{ head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^email-dispatcher'; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) .tools .run .pytest_cache .mypy_cache .ruff_cache
