"""The janitor: finishes every delete in the journal, and reaps orphans.

Contract: runs until cancelled; never returns normally; a failed attempt is logged and
retried, never raised. Four loops (and the namespace reaper) in one root task:

* journalled deletes: each is tried at once (at start, and when woken by a new entry),
  then after 1, 2, 4, ... seconds up to ``app.janitor_max_backoff_seconds``, until its
  objects are gone (``sidecar_janitor_retries_total``, ``sidecar_janitor_pending_deletes``);
  up to ``PARALLEL_ATTEMPTS`` pods at once. A pod deleted by name is finished as soon
  as the status cache no longer holds it (looked at every ``WATCH_POLL_SECONDS``, no
  remote request); the namespace reaper (``sidecar.offload.namespace_reaper``) runs
  here too.
  Retries are capped: after ``app.janitor_max_attempts`` attempts that the remote API
  server answered without the delete finishing (a finalizer that never goes, a
  permission missing; an unreachable server does not count: the journal exists to wait
  out outages), or ``app.delete_give_up_seconds`` after the delete was accepted (once
  this process tried it ``AGE_MIN_TRIES`` times: after a long stop the first attempt
  usually finds pods still terminating), the entry is *dead*: logged once (ERROR),
  kept in the journal file marked ``dead_since``, counted in
  ``sidecar_janitor_dead_deletes`` and listed in ``/healthz``'s body. A dead entry is
  tried again only every ``DEAD_RECHECK_SECONDS`` (and once after a restart), so it
  clears itself once an operator has removed what blocked it; a new ``/delete`` of its
  pod starts it afresh;
* the journal check: every ``JOURNAL_CHECK_SECONDS``, ``DeleteJournal.check`` writes
  what only memory holds or probes the state directory (``/healthz`` reports a journal
  that cannot be written);
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
from dataclasses import dataclass

from metrics import Metrics
from sidecar.backoff import backoff
from sidecar.offload.journal import DeleteJournal, PendingDelete
from sidecar.offload.orphan_pods import OrphanPods
from sidecar.offload.orphans import SWEEP_INTERVAL_SECONDS, sweep_forever
from sidecar.offload.service import Offloader

logger = logging.getLogger(__name__)


DEAD_RECHECK_SECONDS = 3600.0
"""How often a dead (given up) delete is tried again: rarely, but it clears itself."""
JOURNAL_CHECK_SECONDS = 10.0
"""How often the journal's writability is checked when nothing else writes it."""
PARALLEL_ATTEMPTS = 16
"""Journalled deletes attempted at once (each is a handful of remote requests)."""
WATCH_POLL_SECONDS = 0.25
"""How often deletes awaiting the watch look whether their pod has gone."""
AGE_MIN_TRIES = 10
"""Attempts (about four minutes of backoff) before the age cap may give an entry up."""
DUE_SLACK_SECONDS = 0.001
"""An entry due within this is tried now. asyncio ends a timed wait up to its clock's
resolution early (``BaseEventLoop._run_once``), and ``now + delay`` is rounded: the wait
for an entry due a fraction of a nanosecond later returned at once, the entry was still
not due, and the loop spun until the clock moved (for ever on a loop clock that moves
only when the loop is idle, as looptime's in the timing tests)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When the janitor stops retrying a delete (``app.janitor_*`` settings)."""

    max_backoff: float
    """Longest wait between two attempts (``app.janitor_max_backoff_seconds``)."""
    max_attempts: int = 100
    """Attempts the remote answered without finishing (``app.janitor_max_attempts``)."""
    give_up_after: float = 86400.0
    """Seconds after the delete was accepted (``app.delete_give_up_seconds``)."""
    dead_recheck: float = DEAD_RECHECK_SECONDS

    def exhausted(self, entry: PendingDelete, now: float, tries: int) -> str | None:
        """Why ``entry`` is given up on now, or None to keep retrying. ``tries``: the
        attempts this process made, whatever their outcome. The age alone never
        condemns an entry this process has barely tried: after a long stop, the first
        attempt usually finds the pods still terminating."""
        if entry.attempts >= self.max_attempts:
            return f"{entry.attempts} attempts (app.janitor_max_attempts)"
        old = now - entry.since >= self.give_up_after
        if old and tries >= min(self.max_attempts, AGE_MIN_TRIES):
            return f"{now - entry.since:.0f} s (app.delete_give_up_seconds)"
        return None


async def run_janitor(
    offloader: Offloader,
    journal: DeleteJournal,
    *,
    policy: RetryPolicy,
    metrics: Metrics,
    orphan_pods: OrphanPods | None = None,
    journal_check: float = JOURNAL_CHECK_SECONDS,
) -> None:
    async with asyncio.TaskGroup() as group:
        if orphan_pods is not None:
            group.create_task(orphan_pods.run_forever())
        group.create_task(_finish_deletes(offloader, journal, policy=policy))
        if offloader.cleaner.namespaces is not None:
            group.create_task(offloader.cleaner.namespaces.run_forever())
        group.create_task(_check_journal(journal, interval=journal_check))
        group.create_task(
            sweep_forever(
                offloader.remote,
                # The create path's per-uid lock: a sweep waits for a create in flight
                # instead of racing it.
                hold=offloader.hold_uid,
                journal=journal,
                metrics=metrics,
                cleaner=offloader.cleaner,
                grace=offloader.offloading.orphan_objects_grace_seconds,
                interval=SWEEP_INTERVAL_SECONDS,
            )
        )


async def _check_journal(journal: DeleteJournal, *, interval: float) -> None:
    """Every ``interval`` seconds, ``journal.check()``; runs until cancelled, never
    raises (a journal that cannot be written is a state, shown by ``/healthz``)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await journal.check()
        except Exception:  # the janitor must not end: logged, checked again
            logger.exception("journal check failed")


def _announce_dead(journal: DeleteJournal) -> None:
    dead = journal.dead()
    if dead:
        logger.warning(
            "%d delete(s) given up on earlier are kept in %s (dead-letter, e.g. pod uid %s): "
            "tried once now, then every %.0f s",
            len(dead),
            journal.path,
            dead[0].pod_uid,
            DEAD_RECHECK_SECONDS,
        )


async def _finish_deletes(
    offloader: Offloader, journal: DeleteJournal, *, policy: RetryPolicy
) -> None:
    """Try every journalled delete when it is due (see the module docstring); runs
    until cancelled. Woken early by ``offloader.janitor_wakeup`` (a new entry, a
    create that ended)."""
    tries: dict[str, int] = {}
    due: dict[str, float] = {}
    resting: set[str] = set()
    """Dead entries waiting for their recheck (a new /delete revives one at once)."""
    wakeup = offloader.janitor_wakeup
    parallel = asyncio.Semaphore(PARALLEL_ATTEMPTS)
    _announce_dead(journal)
    while True:
        wakeup.clear()
        now = time.monotonic()
        entries = {entry.pod_uid: entry for entry in journal.entries()}
        for uid in list(due):
            if uid not in entries:
                due.pop(uid)
                tries.pop(uid, None)
        for uid in list(resting):
            if uid not in entries or not entries[uid].dead:
                resting.discard(uid)
                due.pop(uid, None)
                tries.pop(uid, None)
        ready: list[PendingDelete] = []
        for uid, entry in entries.items():
            if offloader.creating_since(uid) is not None:
                due.pop(uid, None)  # its create stops at its next write; its end wakes us
                continue
            waiting = due.setdefault(uid, now) > now + DUE_SLACK_SECONDS
            if waiting and not offloader.can_finish_now(uid):
                continue
            ready.append(entry)

        async def attempt(entry: PendingDelete) -> None:
            async with parallel:
                await _attempt(offloader, journal, entry, policy, tries, due, resting)

        # Attempts of different pods are independent: up to PARALLEL_ATTEMPTS at once
        # (after a restart, a thousand journalled deletes do not wait for each other).
        async with asyncio.TaskGroup() as group:
            for entry in ready:
                group.create_task(attempt(entry))
        timeout = max(0.0, min(due.values()) - time.monotonic()) if due else None
        if offloader.awaiting_watch():
            # Pods deleted by name finish when the watch has seen them go: looked for in
            # the status cache (no remote request) this often.
            timeout = min(
                timeout if timeout is not None else WATCH_POLL_SECONDS, WATCH_POLL_SECONDS
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout)


async def _attempt(
    offloader: Offloader,
    journal: DeleteJournal,
    entry: PendingDelete,
    policy: RetryPolicy,
    tries: dict[str, int],
    due: dict[str, float],
    resting: set[str],
) -> None:
    """One attempt at ``entry``, and what follows from it: finished, rescheduled with
    backoff, or given up on (dead, rechecked after ``policy.dead_recheck``)."""
    uid = entry.pod_uid
    done = await offloader.retry_delete(uid, entry.namespace)
    if done:
        logger.info(
            "finished deleting pod %s (uid %s) after %d retries%s",
            entry.name,
            uid,
            tries.get(uid, 0),
            " (it had been given up on)" if entry.dead else "",
        )
        due.pop(uid, None)
        tries.pop(uid, None)
        return
    offloader.note_retry()
    tries[uid] = tries.get(uid, 0) + 1
    current = journal.get(uid)
    if current is None:  # removed meanwhile (an adopting create)
        return
    if current.dead:
        resting.add(uid)
        due[uid] = time.monotonic() + policy.dead_recheck
        return
    why = policy.exhausted(current, time.time(), tries[uid])
    if why is not None:
        await journal.mark_dead(uid)
        logger.error(
            "giving up deleting pod %s (uid %s) in namespace %s after %s: %s; kept "
            "in %s as dead (sidecar_janitor_dead_deletes, /healthz), tried again "
            "every %.0f s",
            current.name,
            uid,
            current.namespace,
            why,
            current.last_error or "not finished",
            journal.path,
            policy.dead_recheck,
        )
        resting.add(uid)
        due[uid] = time.monotonic() + policy.dead_recheck
        return
    due[uid] = time.monotonic() + backoff(tries[uid], cap=policy.max_backoff)
