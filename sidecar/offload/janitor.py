"""The janitor: finishes every delete in the journal, and reaps orphans.

Contract: runs until cancelled; never returns normally; a failed attempt is logged and
retried, never raised. Three loops in one root task:

* journalled deletes: each is tried at once (at start, and when woken by a new entry),
  then after 1, 2, 4, ... seconds up to ``app.janitor_max_backoff_seconds``, until its
  objects are gone (``sidecar_janitor_retries_total``, ``sidecar_janitor_pending_deletes``);
* the orphan sweep (``sidecar.offload.orphans``): at start and every five minutes,
  ConfigMaps and Secrets of ours whose pod is gone for good are deleted
  (``sidecar_janitor_orphans_reaped_total``);
* the orphan-pod sweep (``sidecar.offload.orphan_pods``): at start and every
  ``sweep_interval(offloading.orphan_after_seconds)`` seconds, remote pods whose local
  pod is gone (its ``/delete`` never came) are reported on ``/orphans`` and, with
  ``offloading.orphan_policy = delete``, reaped through the journal like a ``/delete``
  (``sidecar_janitor_orphan_pods``, ``sidecar_janitor_orphans_reaped_total{kind="Pod"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from metrics import Metrics
from sidecar.backoff import backoff
from sidecar.offload.journal import DeleteJournal
from sidecar.offload.orphan_pods import OrphanPods
from sidecar.offload.orphans import ORPHAN_GRACE_SECONDS, SWEEP_INTERVAL_SECONDS, sweep_forever
from sidecar.offload.service import Offloader

logger = logging.getLogger(__name__)


async def run_janitor(
    offloader: Offloader,
    journal: DeleteJournal,
    *,
    max_backoff: float,
    metrics: Metrics,
    orphan_pods: OrphanPods | None = None,
) -> None:
    async with asyncio.TaskGroup() as group:
        if orphan_pods is not None:
            group.create_task(orphan_pods.run_forever())
        group.create_task(_finish_deletes(offloader, journal, max_backoff=max_backoff))
        group.create_task(
            sweep_forever(
                offloader.remote,
                # The create path's per-uid lock: a sweep waits for a create in flight
                # instead of racing it.
                hold=offloader.hold_uid,
                journal=journal,
                metrics=metrics,
                cleaner=offloader.cleaner,
                grace=ORPHAN_GRACE_SECONDS,
                interval=SWEEP_INTERVAL_SECONDS,
            )
        )


async def _finish_deletes(
    offloader: Offloader, journal: DeleteJournal, *, max_backoff: float
) -> None:
    attempts: dict[str, int] = {}
    due: dict[str, float] = {}
    wakeup = offloader.janitor_wakeup
    while True:
        wakeup.clear()
        now = time.monotonic()
        entries = {entry.pod_uid: entry for entry in journal.entries()}
        for uid in list(due):
            if uid not in entries:
                due.pop(uid)
                attempts.pop(uid, None)
        for uid, entry in entries.items():
            if offloader.creating_since(uid) is not None:
                due.pop(uid, None)  # its create stops at its next write; its end wakes us
                continue
            if due.setdefault(uid, now) > now:
                continue
            done = await offloader.retry_delete(uid, entry.namespace)
            if done:
                logger.info(
                    "finished deleting pod %s (uid %s) after %d retries",
                    entry.name,
                    uid,
                    attempts.get(uid, 0),
                )
                due.pop(uid, None)
                attempts.pop(uid, None)
                continue
            attempts[uid] = attempts.get(uid, 0) + 1
            offloader.note_retry()
            due[uid] = time.monotonic() + backoff(attempts[uid], cap=max_backoff)
        timeout = max(0.0, min(due.values()) - time.monotonic()) if due else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout)
