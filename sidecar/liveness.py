"""What /healthz reports beyond "every root task runs" (``sidecar.ops.ProcessState``).

``faults`` are liveness failures a restart can cure (a stalled watch, an unwritable
journal); ``dead_letters`` are notes for the body only: deletes given up on, which a
restart cannot remove.
"""

from __future__ import annotations

import time

from sidecar.offload.journal import DeleteJournal
from sidecar.remote.health import RemoteHealth
from sidecar.settings import Settings
from sidecar.status.watcher import Watcher


def faults(
    watcher: Watcher, health: RemoteHealth, journal: DeleteJournal, settings: Settings
) -> list[str]:
    """Liveness beyond "every root task runs" (see ``sidecar.ops``)."""
    faults = []
    stall = watcher.stall(
        serving_since=health.since if health.up else None,
        window=settings.k8s.watch_stall_seconds,
    )
    if stall is not None:
        faults.append(stall)
    if journal.problem is not None:
        faults.append(f"janitor: {journal.problem}")
    return faults


_DEAD_LISTED = 10


def dead_letters(journal: DeleteJournal) -> list[str]:
    """The deletes given up on, for /healthz's body (not a liveness failure: a restart
    cannot remove what blocks them)."""
    dead = journal.dead()
    if not dead:
        return []
    lines = [
        f"janitor: {len(dead)} delete(s) given up on (dead-letter), kept in {journal.path}; "
        "tried again hourly and at each start, at once on a new /delete of the pod"
    ]
    for entry in dead[:_DEAD_LISTED]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.dead_since or 0))
        lines.append(
            f"  pod {entry.name} (uid {entry.pod_uid}) in namespace {entry.namespace}, "
            f"given up at {stamp} after {entry.attempts} attempt(s): "
            f"{entry.last_error or 'not finished'}"
        )
    if len(dead) > _DEAD_LISTED:
        lines.append(f"  ... and {len(dead) - _DEAD_LISTED} more")
    return lines
