"""Fixtures shared by the integration modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import is_async_test
from tests.fixtures import guarded_sidecar
from tests.fixtures.admission_gate import AdmissionGate
from tests.localcluster import LocalCluster


@pytest.fixture(scope="module")
def gate(control_plane: LocalCluster) -> Iterator[AdmissionGate]:
    """The admission webhook that can hold one chosen create (a real slow step), for
    the tests of one module; stopped at its end."""
    admission = AdmissionGate(control_plane)
    admission.start()
    try:
        yield admission
    finally:
        admission.stop()


@pytest.fixture(autouse=True)
def no_blocking_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """In async tests, our code (sidecar, tunnel, metrics) running on the test's event
    loop must not block it: blockbuster (tests/fixtures/guarded_sidecar.py, with its
    allowances) is active and any blocking call fails the test, even one whose
    BlockingError our code caught. The sidecar processes are checked by their fixture."""
    if not is_async_test(request):
        yield
        return
    reports = guarded_sidecar.REPORTS
    seen = len(reports)
    detector = guarded_sidecar.activate()
    try:
        yield
    finally:
        detector.deactivate()
    if len(reports) > seen:
        pytest.fail("".join(reports[seen:]), pytrace=False)
