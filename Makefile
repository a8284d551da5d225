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

# make run REAL_NODE=1: also a real node (root), where offloaded pods really run
run: setup
	$(PY) -m tests.localcluster $(if $(filter 1,$(REAL_NODE)),--real-node)

gates:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy sidecar tunnel metrics tests/localcluster
	$(VENV)/bin/lint-imports

# The integration suite runs twice: as cluster-admin, then with the sidecar holding only
# the remote RBAC of manifests/rbac/remote-rbac.yaml (proof that it is enough). The first
# pass adds a real node (kubelet + containerd) where root and the packages allow it
# (LOCAL_CLUSTER_REAL_NODE=auto; set it to 0 to leave it out, 1 to require it); the
# RBAC pass leaves the real-node tests out (same sidecar code paths as on kwok).
pytest:
	LOCAL_CLUSTER_REAL_NODE=$${LOCAL_CLUSTER_REAL_NODE-auto} $(PY) -m pytest
	SIDECAR_TEST_RBAC=manifests LOCAL_CLUSTER_REAL_NODE=0 \
		$(PY) -m pytest -m "controlplane and not realnode" tests/integration

test: setup gates pytest
