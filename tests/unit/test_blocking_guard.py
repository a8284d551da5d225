"""The blocking-call detector the integration tests run the sidecar under
(tests/fixtures/guarded_sidecar.py) is live: it reports a real blocking call our code
made on the event loop (one it found: the first schema lookup lists kubernetes-validate's
schema directory), and not the same call made from a thread, as the create path now
does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sidecar.offload import validation
from tests.fixtures import guarded_sidecar


@pytest.fixture
def detector() -> Iterator[None]:
    validation._available.cache_clear()  # the lookup reads the directory once per process
    buster = guarded_sidecar.activate()
    reports_before = len(guarded_sidecar.REPORTS)
    try:
        yield
    finally:
        buster.deactivate()
        del guarded_sidecar.REPORTS[reports_before:]


async def test_a_blocking_call_of_ours_on_the_loop_is_reported(detector: None) -> None:
    reported = len(guarded_sidecar.REPORTS)
    with pytest.raises(guarded_sidecar.ReportedBlockingError):
        validation.schema_version("v1.35.4")
    assert len(guarded_sidecar.REPORTS) == reported + 1
    assert "schema_version" in guarded_sidecar.REPORTS[-1]


async def test_the_same_call_in_a_thread_is_not(detector: None) -> None:
    reported = len(guarded_sidecar.REPORTS)
    assert (await asyncio.to_thread(validation.schema_version, "v1.35.4")).startswith("1.35.")
    assert len(guarded_sidecar.REPORTS) == reported
