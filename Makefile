# Every target installs what it needs and reuses it the next time.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Test servers keep their data under pytest's temporary folders; pytest prunes old ones of the
# same root, so each checkout gets its own root: another checkout's test run cannot delete the
# PostgreSQL or Kafka data of this one's mid-run.
TEST_TMP := $(CURDIR)/.local/pytest-tmp
PYTEST := mkdir -p $(TEST_TMP) && PYTEST_DEBUG_TEMPROOT=$(TEST_TMP) $(PY) -m pytest

.PHONY: run cluster test test-unit test-faults test-cluster lint bench lock clean-local schemas audit

$(STAMP): requirements.lock pyproject.toml schemas/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	@# both distributions, editable: the contracts (schemas/) and the services with their commands
	$(PY) -m pip install -q --no-deps --no-build-isolation -e ./schemas -e .
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/coordreg-stack run

# Every part replicated: 3 Kafka brokers, a PostgreSQL primary + synchronous standby, 2 of each
# service and 2 officials' consoles, HAProxy in front (deploy/local/cluster.py; docs/OPERATIONS.md).
cluster: $(STAMP)
	$(VENV)/bin/coordreg-stack cluster

# Debian's chromium, which tests/e2e/test_docs_offline.py drives through Playwright (Playwright's
# own browser download is not used): installed when it is missing (we run as root), else nothing.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

test: $(STAMP) $(CHROMIUM)
	$(PYTEST) tests/unit tests/integration tests/e2e

test-unit: $(STAMP)
	$(PYTEST) tests/unit

test-faults: $(STAMP)
	$(PYTEST) tests/faults -s

# The cluster's fault scenarios: a broker killed and cut off, the database primary and a registry
# killed under load, the Python client across a registry killed behind HAProxy, and a signed-in
# person across the console that signed her in killed behind HAProxy.
test-cluster: $(STAMP)
	$(PYTEST) tests/cluster -s

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy schemas/coordreg_contracts services deploy tests bench
	$(VENV)/bin/lint-imports

# Regenerates schemas/jsonschema/*.json and schemas/asyncapi.yaml from the event models.
schemas: $(STAMP)
	$(VENV)/bin/python -m coordreg_contracts.export

# `make bench CLUSTER=1`: the HTTP load phases against the local cluster (bench/results/cluster.md).
bench: $(STAMP)
	$(PY) -m bench.run $(if $(CLUSTER),--cluster)

# The audit replay tool, e.g. `make audit ARGS="verify --json verify.json"` (see services/audit/README.md).
audit: $(STAMP)
	$(VENV)/bin/coordreg-audit $(ARGS)

# Regenerates requirements.lock from requirements.in (needs uv: pip install uv).
lock:
	uv pip compile requirements.in --generate-hashes --python-version 3.11 -o requirements.lock

clean-local:
	rm -rf .local
