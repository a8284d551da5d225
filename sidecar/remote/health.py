"""Is the remote API server answering? One prober task keeps the answer current.

The ping (``/status []``) and ``/readyz`` read this state instead of calling the remote
server on every request: interLink pings every 30 s and probes come every few seconds,
but neither should turn into load on the remote cluster or wait on a slow one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sidecar.remote.errors import RemoteError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RemoteHealth:
    """The last reachability verdict. ``since`` is a wall-clock time (for messages)."""

    up: bool = False
    checked: bool = False
    since: float = 0.0
    detail: str = "not checked yet"
    resources: dict[str, Any] = field(default_factory=dict)
    """``PingResponse.resources`` of the last capacity measurement (may be empty)."""

    def record(self, *, up: bool, detail: str) -> None:
        if up != self.up or not self.checked:
            self.since = time.time()
            log = logger.info if up else logger.warning
            log("remote API server %s: %s", "reachable" if up else "unreachable", detail)
        self.up, self.checked, self.detail = up, True, detail

    def describe(self) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
        if self.up:
            return f"remote API server reachable since {stamp} ({self.detail})"
        if not self.checked:
            return "remote API server not checked yet"
        return f"remote API server unreachable since {stamp}: {self.detail}"


async def probe_forever(
    health: RemoteHealth,
    version: Callable[[], Awaitable[Any]],
    *,
    interval: float,
    measure: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    measure_every: float = 30.0,
    on_change: Callable[[bool], None] | None = None,
) -> None:
    """Check the remote server every ``interval`` seconds; runs until cancelled.

    Never returns normally and never raises except CancelledError: a failed check is a
    verdict (``health.up = False``), not an error. ``measure`` (the node capacity for
    the ping) runs at most every ``measure_every`` seconds while the server answers.
    """
    measured_at = float("-inf")
    while True:
        try:
            info = await version()
        except RemoteError as exc:
            health.record(up=False, detail=str(exc))
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
            health.record(up=True, detail=f"version {info.get('gitVersion', '?')}")
        if on_change is not None:
            on_change(health.up)
        await asyncio.sleep(interval)
