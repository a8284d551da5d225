"""Health that means something: the prober proves a read from storage within a time
limit, creates are refused at once on its verdict, and a watcher that never streams
(LIST works, WATCH refused) is stalled once the remote has served for the window."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from metrics import make_metrics
from sidecar import settings
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError
from sidecar.remote.health import RemoteHealth, create_refusal, probe_forever
from sidecar.settings import K8sSettings, SettingsError
from sidecar.status.cache import StatusCache
from sidecar.status.watcher import Watcher


async def probe_until(
    health: RemoteHealth, check: Any, *, timeout: float, served_since: Any = None
) -> None:
    task = asyncio.create_task(
        probe_forever(health, check, interval=0.05, timeout=timeout, served_since=served_since)
    )
    try:
        async with asyncio.timeout(5):
            while not health.checked:
                await asyncio.sleep(0.01)  # polling a condition with a deadline
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_storage_read_that_hangs_is_down_within_the_limit() -> None:
    async def hangs() -> str:
        await asyncio.Event().wait()  # etcd down: the API server never answers
        return "never"

    health = RemoteHealth()
    started = time.monotonic()
    await probe_until(health, hangs, timeout=0.2)
    assert time.monotonic() - started < 2
    assert not health.up and "etcd" in health.detail
    refusal = create_refusal(health)
    assert refusal is not None and "unreachable since" in refusal


async def test_our_own_stalled_loop_is_not_the_servers_silence() -> None:
    """Found by a 500-wide burst: the loop was busy with creates for seconds, the answer
    to the check waited unread, a wall-clock timeout fired, and the server (answering
    reads in 0.3 s throughout) was declared down. The stall is forced here: a task
    that blocks the loop (time.sleep) for 0.5 s at a time."""
    stop = asyncio.Event()

    async def hog() -> None:
        while not stop.is_set():
            time.sleep(0.5)  # noqa: ASYNC251 - a real slow step on the loop, as a burst
            await asyncio.sleep(0)

    async def answers() -> str:
        await asyncio.sleep(0.3)  # the server's answer takes 0.3 s
        return "namespace default read from storage"

    hogging = asyncio.create_task(hog())
    await asyncio.sleep(0)
    try:
        health = RemoteHealth()
        await probe_until(health, answers, timeout=0.4)
        assert health.up, health.detail
    finally:
        stop.set()
        await hogging


async def test_a_check_queued_behind_calls_being_served_is_busy_not_down() -> None:
    """Found by a 500-wide burst of creates: the check waited for one of the client's
    100 pooled connections past its limit, the server was declared down, and the
    creates it was serving got 503 for the next 5 s."""
    served_after: list[float] = []

    async def queued() -> str:
        served_after.append(time.monotonic())  # another call is answered meanwhile
        await asyncio.Event().wait()
        return "never"

    health = RemoteHealth()
    await probe_until(
        health, queued, timeout=0.2, served_since=lambda moment: served_after[-1] >= moment
    )
    assert health.up and "busy" in health.detail
    assert create_refusal(health) is None
    # Nothing served since the check began (etcd down): down, as before.
    health = RemoteHealth()
    await probe_until(health, queued, timeout=0.2, served_since=lambda moment: False)
    assert not health.up and "etcd" in health.detail


async def test_an_error_answer_is_down_and_a_read_is_up() -> None:
    async def forbidden() -> str:
        raise RemoteError(403, "Forbidden", 'cannot get resource "namespaces"')

    health = RemoteHealth()
    await probe_until(health, forbidden, timeout=1)
    assert not health.up and "403" in health.detail

    async def reads() -> str:
        return "namespace default read from storage"

    health = RemoteHealth()
    assert create_refusal(health) is None, "not checked yet: no verdict, no refusal"
    await probe_until(health, reads, timeout=1)
    assert health.up and create_refusal(health) is None


class ListOnlyRemote:
    """LIST works; WATCH is refused (the ServiceAccount has no ``watch`` right), or
    streams one bookmark when ``watch_allowed``."""

    def __init__(self, *, watch_allowed: bool) -> None:
        self.watch_allowed = watch_allowed

    async def list_all_pods(self, selector: str) -> tuple[list[dict[str, Any]], str]:
        return [], "10"

    async def watch_all_pods(self, *args: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        if not self.watch_allowed:
            raise RemoteError(403, "Forbidden", 'cannot watch resource "pods"')
        yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}}
        raise RemoteError(0, "Disconnected", "stream broken")


def watcher(remote: ListOnlyRemote) -> Watcher:
    return Watcher(
        cast(RemoteCluster, remote),
        StatusCache(),
        settings=K8sSettings(kubeconfig_path="unused", request_timeout_seconds=5),
        metrics=make_metrics(CollectorRegistry(), version="test"),
    )


async def test_a_relist_alone_is_not_progress_and_a_bookmark_is() -> None:
    refused = watcher(ListOnlyRemote(watch_allowed=False))
    refused.progress_at = 0.0
    with pytest.raises(RemoteError):
        await refused._list_and_watch()
    assert refused.progress_at == 0.0

    streaming = watcher(ListOnlyRemote(watch_allowed=True))
    streaming.progress_at = 0.0
    with pytest.raises(RemoteError):
        await streaming._list_and_watch()
    assert streaming.progress_at > time.time() - 5


def test_a_stall_is_charged_only_while_the_remote_serves() -> None:
    w = watcher(ListOnlyRemote(watch_allowed=False))
    now = time.time()
    w.progress_at = now - 1000
    assert w.stall(serving_since=None, window=300) is None, "an outage is not a stall"
    assert w.stall(serving_since=now - 100, window=300) is None, "back only 100 s ago"
    w.last_restart = 'error: 403 Forbidden: cannot watch resource "pods"'
    stall = w.stall(serving_since=now - 400, window=300)
    assert stall is not None and "remote-watcher" in stall and "cannot watch" in stall
    w.progress_at = now - 10
    assert w.stall(serving_since=now - 400, window=300) is None


def test_the_stall_window_must_outlast_the_inactivity_timeout() -> None:
    base = {"APP_SOCKET_ADDRESS": "unix:///x.sock"}
    with pytest.raises(SettingsError, match=r"k8s.watch_stall_seconds: must be more than"):
        settings.load(None, base | {"K8S_WATCH_STALL_SECONDS": "60"})
    loaded = settings.load(None, base | {"APP_JANITOR_MAX_ATTEMPTS": "7"})
    assert loaded.k8s.watch_stall_seconds == 300 and loaded.app.janitor_max_attempts == 7
    assert loaded.app.delete_give_up_seconds == 86400
