"""Can the remote API server serve reads from its storage? One prober task keeps the answer.

The check is a read of one object from storage: ``GET /api/v1/namespaces/default``
without a resourceVersion, which the API server answers from etcd (a quorum read), not
from its watch cache; a 404 proves the same. ``GET /version`` is not enough: the API
server answers it without etcd, so an etcd outage looked healthy while every create
hung for 30 s. With etcd down such a read hangs until the API server's own 60 s request
timeout, so the prober gives it ``PROBE_TIMEOUT_SECONDS``. One request per
``interval``; the RBAC rule is ``get namespaces`` (manifests/rbac/remote-rbac.yaml),
which creating the offloading namespaces needs anyway.

Who reads the verdict (never the remote server on a request path): the ping
(``/status []``: 503 while the remote cannot serve, so interLink marks the virtual node
NotReady), ``/create`` (``create_refusal``: 503 at once instead of a 30 s hang),
``/readyz``'s body and ``sidecar_remote_up``. Never readiness itself: a sidecar that
drops out of its Service while the remote is down loses the ``/delete`` calls that the
journal exists to keep.

Recovery: while the verdict is "unreachable" the check runs every
``DOWN_INTERVAL_SECONDS`` instead of every ``interval``, so a server that is back is seen
within half a second, and each return to "serving" (``recoveries``) ends the watcher's
backoff sleep at once (``sidecar.status.watcher``). The watcher, when the server stops
answering it, asks for a check at once (``ask``): an outage shorter than ``interval``
is seen too, so its end wakes the watcher as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError

logger = logging.getLogger(__name__)

PROBE_NAMESPACE = "default"
"""Exists in every cluster (and cannot be deleted); a 404 would prove a storage read too."""
PROBE_TIMEOUT_SECONDS = 5.0
"""A storage read that has not answered by then counts as down (etcd unreachable)."""
DOWN_INTERVAL_SECONDS = 0.5
"""The check's period while the verdict is "unreachable": a refused connection costs
nothing, a hanging read is bounded by ``PROBE_TIMEOUT_SECONDS`` anyway, an error answer
(e.g. 403 without the ``get namespaces`` right) is a cheap refusal, and the server's
return is seen this soon (the ping, ``/create`` and the watcher wait for it)."""
LOOP_TICK_SECONDS = 0.25
"""Granularity of the check's clock (``within``): a stall of this process's own event
loop counts for at most this long."""


async def within(check: Awaitable[str], limit: float, *, tick: float = LOOP_TICK_SECONDS) -> str:
    """``await check``, or TimeoutError once ``limit`` seconds of *this process's
    attention* passed without an answer.

    Wall time would blame the server for our own stalls: a burst of creates keeps the
    event loop busy validating and translating for seconds at a time (measured: 100
    concurrent creates, no log line for 8 s), and an answer that had arrived waited
    unread until a plain ``asyncio.timeout`` fired: the server was declared down and
    400 creates it would have served got 503. So the clock advances by at most
    ``tick`` per wake-up of this coroutine: a quiet loop times a hung server out after
    ``limit`` seconds as before; a starved one gives it the time it could not listen.
    """
    task = asyncio.ensure_future(check)
    attention = 0.0
    try:
        while True:
            started = time.monotonic()
            done, _ = await asyncio.wait([task], timeout=tick)
            if done:
                return task.result()
            attention += min(time.monotonic() - started, tick)
            if attention >= limit:
                raise TimeoutError
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])


@dataclass(slots=True)
class RemoteHealth:
    """The last verdict. ``since`` is a wall-clock time (for messages)."""

    up: bool = False
    checked: bool = False
    since: float = 0.0
    detail: str = "not checked yet"
    resources: dict[str, Any] = field(default_factory=dict)
    """``PingResponse.resources`` of the last capacity measurement (may be empty)."""
    recoveries: int = 0
    """How many times a verdict "serving" followed one of "unreachable"."""
    _recovered: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    """Set (and replaced) at each recovery: what ``recovery_after`` waits on."""
    _asked: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    """Set by ``ask``: the prober's pause ends at once."""

    def record(self, *, up: bool, detail: str) -> None:
        if up != self.up or not self.checked:
            self.since = time.time()
            log = logger.info if up else logger.warning
            log("remote API server %s: %s", "serving" if up else "unreachable", detail)
        if up and self.checked and not self.up:
            self.recoveries += 1
            self._recovered.set()
            self._recovered = asyncio.Event()
        self.up, self.checked, self.detail = up, True, detail

    def ask(self) -> None:
        """Ask the prober for a check now rather than at the end of its pause (the
        watcher does when the server stopped answering it). A check already running
        when asked is followed by another one."""
        self._asked.set()

    async def recovery_after(self, seen: int, *, timeout: float) -> bool:
        """Wait until ``recoveries`` is past ``seen`` (True), at most ``timeout``
        seconds (False)."""
        if self.recoveries > seen:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._recovered.wait()
        except TimeoutError:
            return False
        return True

    async def _pause(self, seconds: float) -> None:
        """The prober's pause between checks: ``seconds``, or until someone asks."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._asked.wait()

    def describe(self) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
        if self.up:
            return f"remote API server serving since {stamp} ({self.detail})"
        if not self.checked:
            return "remote API server not checked yet"
        return f"remote API server unreachable since {stamp}: {self.detail}"


def create_refusal(health: RemoteHealth) -> str | None:
    """Why a ``/create`` must be answered 503 at once, or None to go ahead.

    Only a verdict of the prober refuses (never "not checked yet"): the remote API
    server did not serve a read from storage at the last check, so the create would
    hang for ``k8s.request_timeout_seconds`` per object and then fail anyway.
    """
    if health.checked and not health.up:
        return f"not offloaded: {health.describe()}"
    return None


def storage_read(remote: RemoteCluster) -> Callable[[], Awaitable[str]]:
    """The check: one read from the remote server's storage; returns what it proved."""

    async def check() -> str:
        found = await remote.read_namespace(PROBE_NAMESPACE, probe=True)
        return f"namespace {PROBE_NAMESPACE} {'read' if found else 'looked up'} from storage"

    return check


async def probe_forever(
    health: RemoteHealth,
    check: Callable[[], Awaitable[str]],
    *,
    interval: float,
    down_interval: float = DOWN_INTERVAL_SECONDS,
    timeout: float = PROBE_TIMEOUT_SECONDS,
    measure: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    measure_every: float = 30.0,
    on_change: Callable[[bool], None] | None = None,
    served_since: Callable[[float], bool] | None = None,
) -> None:
    """Run ``check`` every ``interval`` seconds (at most ``timeout`` each), every
    ``down_interval`` while the verdict is "unreachable", and at once when asked
    (``health.ask``); runs until cancelled.

    Never returns normally and never raises except CancelledError: a failed check is a
    verdict (``health.up = False``), not an error. ``measure`` (the node capacity for
    the ping) runs at most every ``measure_every`` seconds while the server serves.

    A check that timed out while other calls got answers (``served_since(start of the
    check)``) is not an outage but a busy server (a 500-wide burst of creates on two
    cores): calling it down would refuse the creates it is serving.
    """
    measured_at = float("-inf")
    while True:
        started = time.monotonic()
        health._asked.clear()  # this check answers whoever asked so far
        try:
            detail = await within(check(), timeout)
        except RemoteError as exc:
            health.record(up=False, detail=str(exc))
        except TimeoutError:
            if served_since is not None and served_since(started):
                health.record(
                    up=True,
                    detail=f"busy: the check waited over {timeout:.0f} s while other "
                    "calls were served",
                )
            else:
                health.record(
                    up=False,
                    detail=f"a read of namespace {PROBE_NAMESPACE} got no answer within "
                    f"{timeout:.0f} s (its storage, etcd, may be down)",
                )
        else:
            # Measure before declaring the server up: the first ping that says "ok"
            # (and /readyz) then already carries the capacity.
            if measure is not None and time.monotonic() - measured_at >= measure_every:
                measured_at = time.monotonic()
                try:
                    health.resources = await measure()
                except RemoteError as exc:  # e.g. no RBAC to list nodes: the ping stays honest
                    logger.warning("cannot measure remote node capacity: %s", exc)
                    health.resources = {}
            health.record(up=True, detail=detail)
        if on_change is not None:
            on_change(health.up)
        await health._pause(interval if health.up else min(interval, down_interval))
