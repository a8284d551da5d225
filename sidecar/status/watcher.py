"""The remote watcher: LIST then WATCH every pod labelled ``interlink.io=offloading``.

Contract: ``watch_forever`` runs until cancelled; it never returns and never raises
anything but CancelledError. Every failure is a *restart* with a recorded reason:

* ``gone``: the server answered 410 (our resourceVersion is older than what it keeps):
  re-list at once;
* ``inactivity``: no byte, not even a bookmark, for ``k8s.watch_inactivity_seconds``
  (the server sends a bookmark about every minute, so the stream is dead);
* ``unreachable`` / ``error``: the remote API server could not be reached, or answered
  an error; the cache is marked unconfirmed (``/status`` says 503) until a re-list works.

Restarts back off (1 s doubling to ``k8s.watch_max_backoff_seconds``, 30 s by default,
+-20 % jitter; none after a watch that was healthy for a minute). The doubling starts
again from 1 s once the watch made progress (below): a LIST alone is not success (with
the watch refused it would re-list every second). A stream the server ends normally (its
``timeoutSeconds``) is resumed from the last resourceVersion without a re-list and is
not a restart.

The backoff sleep ends early when the remote API server is back: the prober
(``sidecar.remote.health``) checks every 0.5 s while the server is unreachable, and its
return to "serving" (a *recovery*, counted since the attempt began) wakes the watcher
for a re-list at once, so ``/status`` answers 200 again within half a second of the
server serving reads, however long the outage made the backoff (measured after a
restart of kube-apiserver: 0.9-1.5 s *before* its own ``/readyz`` said ok, which
passes about a second after it serves reads; was up to the backoff, 30 s, after). An
``unreachable`` restart asks the prober for a check at once, so an outage between two
of its checks is seen too. A recovery is a down-then-up pair of verdicts, at least
0.5 s apart: a server that answers the prober and refuses the watcher (an ``error``
restart for ever) keeps the full backoff.

Never dying is not the same as working, so the watcher also keeps its *progress*
(``progress_at``, for liveness: ``stall``): the remote API server streaming to it. A
watch event (a bookmark too, about one a minute on an idle stream), a watch stream
the server ended normally, or one that fell silent for ``k8s.watch_inactivity_seconds``
(the server had accepted it) is progress. A LIST alone is not: a watcher whose LIST
works and whose WATCH is refused (no ``watch`` right) restarts with ``error`` for ever,
confirming the cache for an instant each time, while ``/status`` answers 503. Such a
watcher is *stalled* once it made no progress for ``k8s.watch_stall_seconds`` (more
than the inactivity timeout, so an idle healthy stream never looks stalled) counted
only while the remote API server serves reads: an outage is the ping's business, and
a restart would not end it but would cut interLink off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from metrics import Metrics
from sidecar.backoff import backoff
from sidecar.core import naming
from sidecar.core.shape import JsonObject
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError
from sidecar.remote.health import RemoteHealth
from sidecar.settings import K8sSettings
from sidecar.status.cache import StatusCache

logger = logging.getLogger(__name__)

SELECTOR = f"{naming.OFFLOADING_LABEL}={naming.OFFLOADING_VALUE}"
HEALTHY_AFTER_SECONDS = 60.0
"""A watch that ran this long before failing was healthy: its failure starts a new
backoff at 1 s instead of doubling on (about one bookmark period, so a stream that
carried at least one bookmark counts)."""


class _Restart(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def last_change(pod: JsonObject) -> float | None:
    """Wall-clock time of the pod's last write, from managedFields (second precision)."""
    stamps = [
        entry.get("time")
        for entry in (pod.get("metadata") or {}).get("managedFields") or []
        if isinstance(entry, dict)
    ]
    parsed = []
    for stamp in stamps:
        if isinstance(stamp, str):
            try:
                parsed.append(datetime.fromisoformat(stamp).timestamp())
            except ValueError:
                continue
    return max(parsed) if parsed else None


def apply_event(cache: StatusCache, event: dict[str, Any]) -> str:
    """Apply one watch event to the cache; returns the new resourceVersion ("" if none).

    Raises _Restart for an ERROR event (410 Gone: ``gone``).
    """
    kind = event.get("type")
    obj = event.get("object") if isinstance(event.get("object"), dict) else {}
    assert isinstance(obj, dict)
    if kind == "ERROR":
        code = obj.get("code")
        reason = "gone" if code == 410 else "error"
        raise _Restart(reason, f"{code} {obj.get('reason', '')}: {obj.get('message', '')}")
    version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    if kind in ("ADDED", "MODIFIED"):
        cache.upsert(obj)
    elif kind == "DELETED":
        cache.remove(obj)
    elif kind == "BOOKMARK":
        cache.touch()
    return version


class Watcher:
    def __init__(
        self,
        remote: RemoteCluster,
        cache: StatusCache,
        *,
        settings: K8sSettings,
        metrics: Metrics,
        health: RemoteHealth | None = None,
    ) -> None:
        self._remote = remote
        self._cache = cache
        self._settings = settings
        self._metrics = metrics
        self._health = health
        """The prober's verdict: its recoveries end a backoff sleep (None: plain sleeps)."""
        self.progress_at = time.time()
        """Wall-clock time of the last progress (the start counts as progress)."""
        self.last_restart = ""
        """Reason and detail of the last restart (clipped), for the liveness message."""

    def progress_age(self) -> float:
        """Seconds since the last progress (``sidecar_watch_progress_age_seconds``)."""
        return max(0.0, time.time() - self.progress_at)

    def stall(self, *, serving_since: float | None, window: float) -> str | None:
        """Why the watcher counts as stuck (for ``/healthz``), or None.

        ``serving_since``: since when the remote API server serves reads (None: it does
        not, and nothing is charged); ``window``: ``k8s.watch_stall_seconds``.
        """
        if serving_since is None:
            return None
        quiet = time.time() - max(self.progress_at, serving_since)
        if quiet < window:
            return None
        return (
            f"remote-watcher: no watch progress for {quiet:.0f} s while the remote API server "
            f"served reads (k8s.watch_stall_seconds = {window:g}); last restart: "
            f"{self.last_restart or 'none'}"
        )

    async def watch_forever(self) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            progress_before = self.progress_at
            recoveries = self._health.recoveries if self._health is not None else 0
            try:
                await self._list_and_watch()
            except _Restart as restart:
                reason, detail = restart.reason, restart.detail
            except RemoteError as exc:
                reason = "unreachable" if exc.status == 0 else "error"
                detail = str(exc)
            except TimeoutError:
                # Only the open stream times out so (the requests raise RemoteError): the
                # server had accepted the watch.
                self.progress_at = time.time()
                reason, detail = "inactivity", "no event or bookmark in time"
            except Exception as exc:  # the watcher must never die
                logger.exception("watch failed unexpectedly")
                reason, detail = "bug", repr(exc)
            self._metrics.watch_restarts.labels(reason).inc()
            self.last_restart = f"{reason}: {detail[:300]}"
            if reason != "gone":
                self._cache.unconfirm(detail)
            if self.progress_at > progress_before:
                failures = 0  # the watch streamed: the next failure starts a new doubling
            healthy = time.monotonic() - started > HEALTHY_AFTER_SECONDS
            failures = 0 if healthy or reason == "gone" else failures + 1
            delay = (
                0.0
                if failures == 0
                else backoff(failures, cap=self._settings.watch_max_backoff_seconds)
            )
            if reason == "unreachable" and self._health is not None:
                self._health.ask()
            logger.warning(
                "watch restarts (%s: %s); next attempt in %.1f s, or when the remote API "
                "server is back",
                reason,
                detail,
                delay,
            )
            await self._pause(delay, recoveries)

    async def _pause(self, delay: float, recoveries: int) -> None:
        """Sleep ``delay`` seconds, or until the prober saw the remote API server come
        back after ``recoveries`` (its count when the failed attempt began)."""
        if delay <= 0 or self._health is None:
            await asyncio.sleep(delay)
            return
        started = time.monotonic()
        if await self._health.recovery_after(recoveries, timeout=delay):
            logger.info(
                "remote API server serving again: re-listing now (after %.1f s of a %.1f s "
                "backoff)",
                time.monotonic() - started,
                delay,
            )

    async def _list_and_watch(self) -> None:
        pods, version = await self._remote.list_all_pods(SELECTOR)
        self._cache.replace_all(pods)
        self._cache.confirm()
        logger.info(
            "status cache synced: %d remote pod(s) at resourceVersion %s", len(pods), version
        )
        while True:  # each pass is one watch request, resumed where the last one ended
            async for event in self._remote.watch_all_pods(
                SELECTOR,
                version,
                timeout_seconds=self._settings.watch_timeout_seconds,
                inactivity=self._settings.watch_inactivity_seconds,
            ):
                kind = str(event.get("type"))
                self._metrics.watch_events.labels(kind).inc()
                obj = event.get("object") if isinstance(event.get("object"), dict) else {}
                assert isinstance(obj, dict)
                # Only status changes count: a deletion mark or a label change has no new
                # managedFields time, so it would measure the pod's age. Read before the
                # cache takes (and slims) the object.
                changed = None
                if kind in ("ADDED", "MODIFIED") and self._cache.status_changed(obj):
                    changed = last_change(obj)
                version = apply_event(self._cache, event) or version
                self.progress_at = time.time()
                if changed is not None:
                    self._metrics.status_propagation.observe(max(0.0, time.time() - changed))
            self.progress_at = time.time()  # the server ended the stream normally
