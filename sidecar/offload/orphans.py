"""The orphan sweep: ConfigMaps and Secrets of ours whose pod is gone are deleted.

``/delete`` and the journal remove a pod's objects; the sweep is the net under them. It
catches what they never hear about: a create interrupted before its pod existed (the
process killed, the remote API server lost and the rollback with it) that interLink
did not repeat, or copies left behind by an upstream plugin.

An object is an orphan, and is deleted, when all of these hold:

* it is a ConfigMap or a Secret carrying the ownership labels (``interlink.io=offloading``
  and ``interlink.io/source.pod_uid``), and is not being deleted already;
* it was created more than ``grace`` seconds ago (``offloading.orphan_objects_grace_seconds``,
  ten minutes by default: a create writes its pod seconds after its copies);
* its pod uid is not in the delete journal (the janitor finishes those);
* no remote pod carries its pod uid, checked once per pass and again under the pod
  uid's lock right before the delete (a create holds that lock from the moment it looks
  for the pod until the pod exists, so a create in flight is waited for, not raced).

PVCs are never reaped: they hold data and follow their own retention policy. After a
pass, each namespace that lost objects is deleted if it is ours and nothing of ours is
left in it (``Cleaner.delete_namespace_if_empty``). Every deleted object is counted in
``sidecar_janitor_orphans_reaped_total{kind}``.

Contract: ``sweep_orphans`` makes one pass and returns the number of objects deleted per
kind; it raises RemoteError when the remote API server fails. ``sweep_forever`` makes a
pass at once and then every ``interval`` seconds until cancelled; it never returns and
never raises anything but CancelledError (a failed pass is logged and tried again at
the next interval).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from metrics import Metrics
from metrics.catalogue import ORPHAN_KINDS
from sidecar.core import naming
from sidecar.core.shape import JsonObject
from sidecar.offload.cleanup import Cleaner
from sidecar.offload.journal import DeleteJournal
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 300.0
"""A pass lists every ConfigMap and Secret of ours in the remote cluster; leftovers are
rare (the journal and the rollback remove nearly all), so five minutes keeps that cost
negligible while a leftover still goes within the grace period's order of magnitude."""
_OURS = naming.OURS_SELECTOR

HoldUid = Callable[[str], AbstractAsyncContextManager[None]]


def _meta(obj: JsonObject) -> JsonObject:
    meta: JsonObject = obj.get("metadata") or {}
    return meta


def _created(obj: JsonObject) -> float | None:
    stamp = _meta(obj).get("creationTimestamp")
    try:
        return datetime.fromisoformat(stamp).timestamp() if isinstance(stamp, str) else None
    except ValueError:
        return None


def _pod_uid(obj: JsonObject) -> str:
    return str((_meta(obj).get("labels") or {}).get(naming.POD_UID_LABEL) or "")


async def _has_pod(remote: RemoteCluster, uid: str, namespaces: set[str]) -> bool:
    for namespace in sorted(namespaces):
        if await remote.list_objects("Pod", namespace, selector=naming.pod_selector(uid)):
            return True
    return False


async def sweep_orphans(
    remote: RemoteCluster,
    *,
    grace: float,
    hold: HoldUid,
    journal: DeleteJournal,
    metrics: Metrics,
    cleaner: Cleaner | None = None,
) -> dict[str, int]:
    """One pass (see the module docstring); the number of objects deleted per kind."""
    cutoff = time.time() - grace
    # uid -> [(kind, namespace, name)]
    candidates: dict[str, list[tuple[str, str, str]]] = {}
    for kind in ORPHAN_KINDS:
        for obj in await remote.list_all_objects(kind, _OURS):
            meta, uid, created = _meta(obj), _pod_uid(obj), _created(obj)
            namespace, name = meta.get("namespace"), meta.get("name")
            if not (uid and isinstance(namespace, str) and isinstance(name, str)):
                continue
            if uid in journal or meta.get("deletionTimestamp") is not None:
                continue
            if created is None or created > cutoff:
                continue
            candidates.setdefault(uid, []).append((kind, namespace, name))
    reaped = dict.fromkeys(ORPHAN_KINDS, 0)
    if not candidates:
        return reaped
    # Listed after the objects: a pod created since then is seen here.
    pods, _ = await remote.list_all_pods(_OURS)
    alive = {_pod_uid(pod) for pod in pods}
    touched: set[str] = set()
    for uid, objects in candidates.items():
        if uid in alive:
            continue
        async with hold(uid):
            if uid in journal:
                continue  # a /delete came in meanwhile: the janitor owns it now
            if await _has_pod(remote, uid, {namespace for _, namespace, _ in objects}):
                continue
            for kind, namespace, name in objects:
                if await remote.delete(kind, namespace, name):
                    reaped[kind] += 1
                    metrics.orphans_reaped.labels(kind).inc()
                    touched.add(namespace)
                    logger.info(
                        "deleted orphan %s %s/%s: pod uid %s has no remote pod",
                        kind,
                        namespace,
                        name,
                        uid,
                    )
    if cleaner is not None:
        for namespace in sorted(touched):
            await cleaner.delete_namespace_if_empty(namespace)
    return reaped


async def sweep_forever(
    remote: RemoteCluster,
    *,
    hold: HoldUid,
    journal: DeleteJournal,
    metrics: Metrics,
    cleaner: Cleaner | None = None,
    grace: float,
    interval: float = SWEEP_INTERVAL_SECONDS,
) -> None:
    """A pass at once, then every ``interval`` seconds; runs until cancelled."""
    while True:
        try:
            await sweep_orphans(
                remote, grace=grace, hold=hold, journal=journal, metrics=metrics, cleaner=cleaner
            )
        except RemoteError as exc:
            logger.warning("orphan sweep not finished (next in %.0f s): %s", interval, exc)
        await asyncio.sleep(interval)
