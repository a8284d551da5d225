"""The watcher after an outage (issue 12): the prober's "serving again" ends its backoff
sleep at once, an unreachable server makes it ask for a check, a server that refuses
only the watch keeps the full backoff, and the doubling starts again once the watch
streamed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from metrics import make_metrics
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError
from sidecar.remote.health import RemoteHealth, probe_forever
from sidecar.settings import K8sSettings
from sidecar.status import watcher as watcher_module
from sidecar.status.cache import StatusCache
from sidecar.status.watcher import Watcher

SERVING = "namespace default read from storage"


class ScriptedRemote:
    """LIST answers per ``lists`` ("down": no answer, "up": an empty list), then "up";
    the WATCH does what ``watch`` says: "hold" (a healthy stream), "refuse" (403),
    "stream" (one bookmark, then the stream breaks)."""

    def __init__(self, *lists: str, watch: str = "hold") -> None:
        self.lists = list(lists)
        self.watch = watch
        self.list_calls: list[float] = []

    async def list_all_pods(self, selector: str) -> tuple[list[dict[str, Any]], str]:
        self.list_calls.append(time.monotonic())
        if (self.lists.pop(0) if self.lists else "up") == "down":
            raise RemoteError.unreachable(ConnectionRefusedError("connection refused"))
        return [], "10"

    async def watch_all_pods(self, *args: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        if self.watch == "refuse":
            raise RemoteError(403, "Forbidden", 'cannot watch resource "pods"')
        if self.watch == "stream":
            yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}}
            raise RemoteError(0, "Disconnected", "watch stream broken")
        await asyncio.Event().wait()
        yield {}  # pragma: no cover - never reached


def make_watcher(
    remote: ScriptedRemote, health: RemoteHealth | None = None
) -> tuple[Watcher, StatusCache]:
    cache = StatusCache()
    watcher = Watcher(
        cast(RemoteCluster, remote),
        cache,
        settings=K8sSettings(kubeconfig_path="unused", request_timeout_seconds=5),
        metrics=make_metrics(CollectorRegistry(), version="test"),
        health=health,
    )
    return watcher, cache


class Backoffs:
    """Stands in for ``sidecar.backoff.backoff`` in the watcher: records the attempt
    numbers asked for and pauses ``seconds`` each time."""

    def __init__(self) -> None:
        self.attempts: list[int] = []
        self.seconds = 60.0  # longer than any test here: only a wake-up ends it

    def __call__(self, attempt: int, **_: Any) -> float:
        self.attempts.append(attempt)
        return self.seconds


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> Backoffs:
    fake = Backoffs()
    monkeypatch.setattr(watcher_module, "backoff", fake)
    return fake


async def until(what: str, condition: Callable[[], bool], *, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)  # polling a condition with a deadline


@contextlib.asynccontextmanager
async def running(*coroutines: Awaitable[None]) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_server_serving_again_ends_the_backoff_sleep_at_once(backoffs: Backoffs) -> None:
    health = RemoteHealth()
    health.record(up=True, detail=SERVING)
    remote = ScriptedRemote("down")
    watcher, cache = make_watcher(remote, health)
    async with running(watcher.watch_forever()):
        await until("the failed LIST", lambda: backoffs.attempts == [1])
        assert not cache.confirmed
        health.record(up=False, detail="connection refused")  # the prober sees the outage
        health.record(up=True, detail=SERVING)  # ... and its end
        started = time.monotonic()
        await until("the re-list", lambda: cache.confirmed, timeout=2)
    assert time.monotonic() - started < 1, "not after the 60 s backoff"
    assert len(remote.list_calls) == 2 and health.recoveries == 1


async def test_a_recovery_during_the_failed_attempt_is_not_missed(backoffs: Backoffs) -> None:
    """The server came back while the attempt was failing: its pause ends at once."""
    health = RemoteHealth()
    health.record(up=False, detail="connection refused")
    remote = ScriptedRemote("down")

    async def list_then_recover(selector: str) -> tuple[list[dict[str, Any]], str]:
        try:
            return await ScriptedRemote.list_all_pods(remote, selector)
        finally:
            health.record(up=True, detail=SERVING)

    remote.list_all_pods = list_then_recover  # type: ignore[method-assign]
    watcher, cache = make_watcher(remote, health)
    async with running(watcher.watch_forever()):
        await until("the re-list", lambda: cache.confirmed, timeout=2)
    assert backoffs.attempts == [1] and len(remote.list_calls) == 2


async def test_an_unreachable_server_is_checked_at_once_and_its_return_wakes_the_watcher(
    backoffs: Backoffs,
) -> None:
    """An outage between two of the prober's checks (every 60 s here): the watcher's
    failure asks for a check, which sees the outage; the prober then checks every
    0.05 s until the server serves and the watcher re-lists, all within a second."""
    verdicts = ["up", "down", "down"]  # then "up" for ever
    checks: list[float] = []

    async def check() -> str:
        checks.append(time.monotonic())
        if (verdicts.pop(0) if verdicts else "up") == "down":
            raise RemoteError.unreachable(ConnectionRefusedError("connection refused"))
        return SERVING

    health = RemoteHealth()
    prober = probe_forever(health, check, interval=60, down_interval=0.05)
    async with running(prober):
        await until("the first verdict", lambda: health.up)
        remote = ScriptedRemote("down")
        watcher, cache = make_watcher(remote, health)
        started = time.monotonic()
        async with running(watcher.watch_forever()):
            await until("the re-list", lambda: cache.confirmed, timeout=2)
    assert time.monotonic() - started < 1.5
    assert len(checks) == 4 and health.recoveries == 1 and len(remote.list_calls) == 2


async def test_a_server_that_refuses_only_the_watch_keeps_the_full_backoff(
    backoffs: Backoffs,
) -> None:
    """LIST works, WATCH is refused (no ``watch`` right) while the prober, checking every
    10 ms, finds the server serving: no recovery, so no wake-up; each pause is whole
    and the attempts keep doubling (a woken watcher would re-list in a loop)."""
    backoffs.seconds = 0.2

    async def check() -> str:
        return SERVING

    health = RemoteHealth()
    remote = ScriptedRemote(watch="refuse")
    watcher, _ = make_watcher(remote, health)
    async with running(probe_forever(health, check, interval=0.01), watcher.watch_forever()):
        await until("four LISTs", lambda: len(remote.list_calls) >= 4)
    gaps = [b - a for a, b in zip(remote.list_calls, remote.list_calls[1:], strict=False)]
    assert min(gaps) >= 0.19 and health.recoveries == 0
    assert backoffs.attempts[:3] == [1, 2, 3]


async def test_the_doubling_starts_again_once_the_watch_streamed(backoffs: Backoffs) -> None:
    """Success is progress (here a bookmark): each failure after it is a first one. A
    LIST alone is not success: with the watch refused the attempts keep counting."""
    backoffs.seconds = 0.01
    streaming = ScriptedRemote(watch="stream")
    watcher, _ = make_watcher(streaming)
    async with running(watcher.watch_forever()):
        await until("four restarts", lambda: len(backoffs.attempts) >= 4)
    assert backoffs.attempts[:4] == [1, 1, 1, 1]

    backoffs.attempts.clear()
    refused = ScriptedRemote(watch="refuse")
    watcher, _ = make_watcher(refused)
    async with running(watcher.watch_forever()):
        await until("four restarts", lambda: len(backoffs.attempts) >= 4)
    assert backoffs.attempts[:4] == [1, 2, 3, 4]


async def test_the_prober_checks_every_half_second_while_the_server_is_down() -> None:
    verdicts = ["down", "down"]  # then "up"

    async def check() -> str:
        if verdicts:
            verdicts.pop(0)
            raise RemoteError.unreachable(ConnectionRefusedError("connection refused"))
        return SERVING

    health = RemoteHealth()
    started = time.monotonic()
    async with running(probe_forever(health, check, interval=60, down_interval=0.05)):
        await until("the server serving", lambda: health.up, timeout=2)
    assert time.monotonic() - started < 1, "not after the 60 s interval"
    assert health.recoveries == 1, "down, then up: one recovery"
    fresh = RemoteHealth()
    fresh.record(up=True, detail=SERVING)
    assert fresh.recoveries == 0, "the first verdict is no recovery"
