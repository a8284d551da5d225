"""Shared fixtures: the real control plane, a real sshd, and the sidecar as a process;
the per-test timeout scaled by ``TEST_TIMEOUT_SCALE``; async tests that leave tasks
pending fail."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import pytest_timeout

from tests.deadlines import scaled

pytest_plugins = [
    "tests.fixtures.controlplane",
    "tests.fixtures.sshd",
    "tests.fixtures.sidecar_process",
    "tests.fixtures.realnode",
]


# --- deadlines: the per-test timeout grows with TEST_TIMEOUT_SCALE (tests/deadlines.py) ---


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Scale pytest-timeout's per-test timeout (``--timeout``, ``PYTEST_TIMEOUT`` or the
    ini's ``timeout = 120``) before pytest-timeout reads it."""
    timeout = pytest_timeout.get_env_settings(config).timeout
    if timeout:
        config.option.timeout = scaled(timeout)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Scale every ``@pytest.mark.timeout(seconds)`` too (the closest marker wins)."""
    for item in items:
        marker = item.get_closest_marker("timeout")
        if marker is not None and marker.args and marker.args[0]:
            scaled_marker = pytest.mark.timeout(scaled(marker.args[0]), *marker.args[1:])
            item.add_marker(scaled_marker(**marker.kwargs) if marker.kwargs else scaled_marker)


# --- asyncio hygiene: no test leaves tasks behind ---------------------------------------


_NO_LOOP = asyncio.new_event_loop()
_NO_LOOP.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> object:
    """Around each sync test, a closed loop is the current one. looptime's own
    ``pytest_pyfunc_call`` asks the policy for the current loop before every test; for a
    sync test none is set, so asyncio would create one that nobody closes, and its
    ResourceWarning (with its two sockets) fails whichever later test the collector runs
    in."""
    if pytest_asyncio.is_async_test(pyfuncitem):
        return (yield)
    policy = asyncio.get_event_loop_policy()
    policy.set_event_loop(_NO_LOOP)
    try:
        return (yield)
    finally:
        policy.set_event_loop(None)


def is_async_test(request: pytest.FixtureRequest) -> bool:
    function = getattr(request, "function", None)
    return inspect.iscoroutinefunction(function) or (
        request.node.get_closest_marker("asyncio") is not None
    )


@pytest.fixture(autouse=True)
def _no_pending_tasks(request: pytest.FixtureRequest) -> None:
    """Async tests fail if they end with asyncio tasks still pending (named in the failure)."""
    if is_async_test(request):
        request.getfixturevalue("_pending_tasks_check")


@pytest.fixture
async def _pending_tasks_check() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    # Torn down after the test's other function-scoped fixtures (it is set up first).
    left = [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task() and task not in before and not task.done()
    ]
    if left:
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        names = ", ".join(sorted(f"{t.get_name()} ({t.get_coro()!r})" for t in left))
        pytest.fail(f"the test left {len(left)} asyncio task(s) pending: {names}", pytrace=False)
