# Every target installs what it needs and reuses it the next time.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-faults lint bench lock clean-local schemas audit

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	@# the repository root on sys.path: schemas, services and deploy import as packages
	$(PY) -c 'import sysconfig,os; open(os.path.join(sysconfig.get_paths()["purelib"],"coordreg.pth"),"w").write(os.getcwd()+"\n")'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.local.stack run

test: $(STAMP)
	$(PY) -m pytest tests/unit tests/integration tests/e2e

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-faults: $(STAMP)
	$(PY) -m pytest tests/faults -s

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy schemas services deploy

# Regenerates schemas/jsonschema/*.json and schemas/asyncapi.yaml from the event models.
schemas: $(STAMP)
	$(PY) -m schemas.export

bench: $(STAMP)
	$(PY) -m bench.run

# The audit replay tool, e.g. `make audit ARGS="verify --json verify.json"` (see services/audit/README.md).
audit: $(STAMP)
	$(PY) -m services.audit $(ARGS)

# Regenerates requirements.lock from requirements.in (needs uv: pip install uv).
lock:
	uv pip compile requirements.in --generate-hashes --python-version 3.11 -o requirements.lock

clean-local:
	rm -rf .local
