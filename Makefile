# The two commands of the README:
#   make run   - start an embedded control plane with kwok nodes and the sidecar against it
#   make test  - install what is missing, then run every gate (lint, format, types,
#                import contracts, unit and integration tests)
# Both install what they need on a fresh machine (see tests/bootstrap.sh).

VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test setup gates pytest

setup:
	bash tests/bootstrap.sh

run: setup
	$(PY) -m tests.localcluster

gates:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy sidecar tunnel metrics tests/localcluster
	$(VENV)/bin/lint-imports

# The integration suite runs twice: as cluster-admin, then with the sidecar holding only
# the remote RBAC of manifests/rbac/remote-rbac.yaml (proof that it is enough).
pytest:
	$(PY) -m pytest
	SIDECAR_TEST_RBAC=manifests $(PY) -m pytest -m controlplane tests/integration

test: setup gates pytest
