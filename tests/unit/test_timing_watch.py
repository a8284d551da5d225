"""The watcher's clocks on a fast-forwarded loop (looptime): a watch silent for
``k8s.watch_inactivity_seconds`` is restarted, failed attempts back off doubling with
+-20 % jitter up to ``k8s.watch_max_backoff_seconds``, and the doubling starts again
after a watch that made progress or ran healthy for a minute. Hours of backoff take
milliseconds; each interval is checked to the (fake) millisecond."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client
from prometheus_client import CollectorRegistry

from metrics import make_metrics
from sidecar.backoff import backoff
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError
from sidecar.settings import K8sSettings
from sidecar.status import watcher as watcher_module
from sidecar.status.cache import StatusCache
from sidecar.status.watcher import HEALTHY_AFTER_SECONDS, Watcher
from tests.unit.background import running
from tests.unit.loopclock import LoopClock, gaps, loop_now

pytestmark = pytest.mark.looptime

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
EPSILON = 0.05  # fake seconds: the loop's own steps between a timer and the next request


@pytest.fixture(autouse=True)
def loop_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher measures progress and healthy runs on the loop's (fake) clock."""
    monkeypatch.setattr(watcher_module, "time", LoopClock())


def make_watcher(remote: Any, **settings: Any) -> Watcher:
    return Watcher(
        cast(RemoteCluster, remote),
        StatusCache(),
        settings=K8sSettings(kubeconfig_path="unused", request_timeout_seconds=5, **settings),
        metrics=make_metrics(CollectorRegistry(), version="test"),
    )


def restarts(watcher: Watcher, reason: str) -> float:
    registry = watcher._metrics.registry
    return registry.get_sample_value("sidecar_watch_restarts_total", {"reason": reason}) or 0.0


async def until(condition: Callable[[], bool], *, within: float) -> None:
    """Wait (in fake seconds) for ``condition``."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.5)  # polling a condition with a deadline (fake seconds)


# --- the inactivity timeout, through the real RemoteCluster and aiohttp ------------------


class SilentApiServer:
    """LIST answers an empty list; a WATCH gets its headers and then never a byte."""

    def __init__(self) -> None:
        self.watches: list[float] = []
        self.release = asyncio.Event()

    async def pods(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch", "").lower() != "true":
            return web.json_response(
                {"kind": "PodList", "metadata": {"resourceVersion": "5"}, "items": []}
            )
        self.watches.append(loop_now())
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await self.release.wait()  # silent until the test ends
        return response


async def test_a_silent_watch_is_restarted_after_the_inactivity_timeout(
    aiohttp_server: ServerFactory,
) -> None:
    api = SilentApiServer()
    app = web.Application()
    app.router.add_get("/api/v1/pods", api.pods)
    server = await aiohttp_server(app)
    configuration = client.Configuration(host=str(server.make_url("")).rstrip("/"))
    remote = RemoteCluster(client.ApiClient(configuration=configuration), timeout=10)
    inactivity = 300.0
    watcher = make_watcher(remote, watch_inactivity_seconds=inactivity)
    try:
        async with running(watcher.watch_forever()):
            await until(lambda: len(api.watches) >= 3, within=4 * inactivity)
    finally:
        api.release.set()
        await remote.close()
    # Each silent stream is given up after exactly the inactivity timeout, and the next
    # one opened at once (a silent stream the server had accepted is progress: no backoff).
    for gap in gaps(api.watches):
        assert inactivity <= gap < inactivity + EPSILON
    assert restarts(watcher, "inactivity") >= 2
    assert watcher.last_restart.startswith("inactivity")


# --- backoff ---------------------------------------------------------------------------


def test_backoff_doubles_to_the_cap_with_twenty_percent_jitter() -> None:
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (50, 10.0)]:
        assert backoff(attempt, cap=10, rng=lambda: 0.0) == pytest.approx(0.8 * base)
        assert backoff(attempt, cap=10, rng=lambda: 0.5) == pytest.approx(base)
        assert backoff(attempt, cap=10, rng=lambda: 0.999999) == pytest.approx(1.2 * base)


class ScriptedRemote:
    """LIST always answers; each WATCH runs for ``hold`` fake seconds and then, after one
    bookmark when ``progress``, fails (403 when ``refuse``, else the stream breaks)."""

    def __init__(self, *, hold: float = 0.0, progress: bool = False, refuse: bool = False):
        self.hold = hold
        self.progress = progress
        self.refuse = refuse
        self.lists: list[float] = []

    async def list_all_pods(self, selector: str) -> tuple[list[dict[str, Any]], str]:
        self.lists.append(loop_now())
        return [], "10"

    async def watch_all_pods(self, *args: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        if self.refuse:
            raise RemoteError(403, "Forbidden", 'cannot watch resource "pods"')
        await asyncio.sleep(self.hold)
        if self.progress:
            yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}}
        raise RemoteError(0, "Disconnected", "watch stream broken")


def assert_jittered(waits: list[float], bases: list[float]) -> None:
    assert len(waits) == len(bases)
    for wait, base in zip(waits, bases, strict=True):
        assert 0.8 * base - EPSILON <= wait <= 1.2 * base + EPSILON, (wait, base)
    ratios = {round(wait / base, 3) for wait, base in zip(waits, bases, strict=True)}
    assert len(ratios) > 1, "the waits are jittered"


async def test_failed_watches_back_off_doubling_to_the_cap_with_jitter() -> None:
    remote = ScriptedRemote(refuse=True)  # the LIST works, the WATCH never: no progress
    watcher = make_watcher(remote, watch_max_backoff_seconds=30)
    async with running(watcher.watch_forever()):
        await until(lambda: len(remote.lists) >= 9, within=600)
    assert_jittered(gaps(remote.lists)[:8], [1, 2, 4, 8, 16, 30, 30, 30])


async def test_the_doubling_starts_again_after_a_watch_that_made_progress() -> None:
    remote = ScriptedRemote(progress=True)  # one bookmark, then the stream breaks
    watcher = make_watcher(remote, watch_max_backoff_seconds=30)
    async with running(watcher.watch_forever()):
        await until(lambda: len(remote.lists) >= 7, within=600)
    # Every failure follows progress: the wait is the first step's (1 s +-20 %) each time.
    assert_jittered(gaps(remote.lists)[:6], [1.0] * 6)


@pytest.mark.parametrize("healthy", [True, False])
async def test_a_watch_healthy_for_a_minute_is_restarted_at_once(healthy: bool) -> None:
    hold = HEALTHY_AFTER_SECONDS + 1 if healthy else HEALTHY_AFTER_SECONDS / 2
    remote = ScriptedRemote(hold=hold)  # no event at all, then the stream breaks
    watcher = make_watcher(remote, watch_max_backoff_seconds=30)
    async with running(watcher.watch_forever()):
        await until(lambda: len(remote.lists) >= 5, within=1200)
    waits = [gap - hold for gap in gaps(remote.lists)[:4]]
    if healthy:
        assert all(0 <= wait < EPSILON for wait in waits), waits
    else:
        assert_jittered(waits, [1, 2, 4, 8])
