"""Fixtures of the end-to-end tier: the chain (started once per pytest run), kubectl on
LOCAL, the virtual node to go through, and pods that are cleaned up after each test with
the REMOTE checked clean.

The chain is package-scoped: every e2e test lives in this package, so it starts once per
run like a session fixture, but stops after the last e2e test instead of staying up
(two clusters, the sidecar, two interLinks, two virtual kubelets) while the rest of the
suite runs.

In CI (``CI`` set) the tier is mandatory: if the chain cannot be built or started, its
tests fail with the reason. Elsewhere they are skipped with the reason (as the
control-plane fixture does).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.e2e.chain.build import ChainUnavailable, ensure_interlink
from tests.e2e.chain.topology import NODES, Chain, ChainError, start_chain
from tests.e2e.kubectl import Kubectl
from tests.e2e.submit import Submit
from tests.fixtures.progress import progress_printer
from tests.localcluster import LocalClusterError, ensure_binaries
from tests.localcluster.tools import KUBECTL, ToolError, ensure_tool


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"the end-to-end tier is mandatory in CI and could not start: {reason}")
    pytest.skip(f"end-to-end tier unavailable: {reason}")


@pytest.fixture(scope="package")
def chain(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Chain]:
    progress = progress_printer(pytestconfig, "e2e chain")

    reason = ""
    try:
        cluster_binaries = ensure_binaries(progress=progress)
        interlink_binaries = ensure_interlink(progress=progress)
        started = start_chain(
            tmp_path_factory.mktemp("e2e"), cluster_binaries, interlink_binaries, progress=progress
        )
    except (LocalClusterError, ChainUnavailable, ChainError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    if reason:
        _unavailable(reason)  # outside the except: the reason, without a chained traceback
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="package")
def kubectl(chain: Chain) -> Kubectl:
    """kubectl against LOCAL as its admin; failures show the chain's logs."""
    try:
        binary = ensure_tool(KUBECTL)
    except ToolError as exc:
        _unavailable(str(exc))
    return Kubectl(binary, chain.local.kubeconfig, context=chain.diagnostics)


@pytest.fixture(params=list(NODES))
def node(request: pytest.FixtureRequest) -> str:
    """The virtual node a test goes through: each test runs once per node (TCP and unix
    socket between interLink and the sidecar)."""
    return str(request.param)


@pytest.fixture
def submit(chain: Chain, kubectl: Kubectl) -> Iterator[Submit]:
    """``submit(manifest)`` / ``submit.many(manifests)`` apply pods on LOCAL. At the end,
    pods still there are deleted, and the test fails unless LOCAL has none of them and
    REMOTE holds nothing of ours."""
    pods = Submit(kubectl)
    yield pods
    pods.cleanup(chain)
