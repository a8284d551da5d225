"""Fixtures shared by the integration modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sidecar.localcluster import LocalCluster
from tests.fixtures.admission_gate import AdmissionGate


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
