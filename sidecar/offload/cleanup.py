"""Removing every remote object of one pod, found by label, and then its namespace.

Idempotent and safe to repeat: each call deletes what is still there and reports whether
the pod's objects are all gone. Pods terminate gracefully, so the first call after a
delete usually finds them still Terminating; the janitor calls again later.

PVCs: only ones the sidecar created (annotation ``interlink.io/created-by``; never a
PVC the sidecar did not create) whose
``interlink.io/pvc-retention-policy`` is ``delete`` and that no remaining pod uses; a PVC
created for another pod of ours is left alone while that pod exists (or for its first
minute, while its pod may still be being created). A retained PVC loses its pod-uid
label: it outlives the pod, and keeps the namespace alive. Namespace: deleted when it
carries our label, nothing of ours is left in it and no create is in flight for it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from sidecar.api.wire import JsonObject
from sidecar.offload import naming
from sidecar.offload.locks import ActivityCounter
from sidecar.offload.ownership import CREATED_BY_ANNOTATION, CREATED_BY_VALUE
from sidecar.offload.volumes import PVC_RETENTION_ANNOTATION
from sidecar.remote.cluster import RemoteCluster

logger = logging.getLogger(__name__)

PVC_CREATION_GRACE_SECONDS = 60.0
_KINDS_BY_UID = ("Pod", "ConfigMap", "Secret")


def _meta(obj: JsonObject) -> JsonObject:
    meta: JsonObject = obj.get("metadata") or {}
    return meta


def _age_seconds(obj: JsonObject) -> float:
    stamp = _meta(obj).get("creationTimestamp")
    if not isinstance(stamp, str):
        return 0.0
    return time.time() - datetime.fromisoformat(stamp).timestamp()


def _claims(pod: JsonObject) -> set[str]:
    return {
        v["persistentVolumeClaim"].get("claimName", "")
        for v in (pod.get("spec") or {}).get("volumes") or []
        if isinstance(v.get("persistentVolumeClaim"), dict)
    }


class Cleaner:
    def __init__(self, remote: RemoteCluster, activity: ActivityCounter) -> None:
        self._remote = remote
        self._activity = activity

    async def cleanup(self, namespace: str, pod_uid: str) -> bool:
        """Delete what is left of pod ``pod_uid``; True when nothing of it remains."""
        remote = self._remote
        selector = naming.pod_selector(pod_uid)
        for kind in _KINDS_BY_UID:
            for obj in await remote.list_objects(kind, namespace, selector=selector):
                if _meta(obj).get("deletionTimestamp") is None:
                    await remote.delete(kind, namespace, _meta(obj)["name"])
        if await remote.list_objects("Pod", namespace, selector=selector):
            return False  # still terminating; PVCs and namespace wait for them
        await self._delete_unused_pvcs(namespace, pod_uid)
        await self.delete_namespace_if_empty(namespace)
        return True

    async def _delete_unused_pvcs(self, namespace: str, pod_uid: str) -> None:
        pvcs = await self._remote.list_objects("PersistentVolumeClaim", namespace)
        ours = [
            pvc
            for pvc in pvcs
            if (_meta(pvc).get("annotations") or {}).get(CREATED_BY_ANNOTATION) == CREATED_BY_VALUE
        ]
        if not ours:
            return  # the common case: no pod list needed (it grows with the namespace)
        pods = await self._remote.list_objects("Pod", namespace)
        used = set().union(*(_claims(p) for p in pods)) if pods else set()
        owners = {_meta(p).get("labels", {}).get(naming.POD_UID_LABEL) for p in pods}
        for pvc in ours:
            meta = _meta(pvc)
            annotations = meta.get("annotations") or {}
            policy = {
                p.strip() for p in str(annotations.get(PVC_RETENTION_ANNOTATION, "")).split(",")
            }
            owner = (meta.get("labels") or {}).get(naming.POD_UID_LABEL)
            if "delete" not in policy:
                if owner == pod_uid:  # retained: it outlives its pod
                    await self._remote.remove_label(
                        "PersistentVolumeClaim", namespace, meta["name"], naming.POD_UID_LABEL
                    )
                continue
            if meta["name"] in used:
                continue
            if owner != pod_uid and (
                owner in owners or _age_seconds(pvc) < PVC_CREATION_GRACE_SECONDS
            ):
                continue
            logger.info("deleting PVC %s/%s (retention policy delete)", namespace, meta["name"])
            await self._remote.delete("PersistentVolumeClaim", namespace, meta["name"])

    async def delete_namespace_if_empty(self, namespace: str, *, own_creates: int = 0) -> None:
        """Delete ``namespace`` if it is ours and empty of our objects. ``own_creates``:
        creates in flight that the caller is part of (a rollback counts itself)."""
        found = await self._remote.read_namespace(namespace)
        if found is None or self._activity.count(namespace) > own_creates:
            return
        meta = _meta(found)
        if (meta.get("labels") or {}).get(naming.OFFLOADING_LABEL) != naming.OFFLOADING_VALUE:
            return  # not created by us (or upstream): never deleted
        if (found.get("status") or {}).get("phase") == "Terminating":
            return
        ours = f"{naming.OFFLOADING_LABEL}={naming.OFFLOADING_VALUE}"
        for kind in (*_KINDS_BY_UID, "PersistentVolumeClaim"):
            # One object is enough to know the namespace is in use: reading all of them
            # cost every delete as much as the namespace holds (and its memory).
            if await self._remote.list_objects(kind, namespace, selector=ours, limit=1):
                return
        # No await between this check and the call: a create cannot slip in between.
        if self._activity.count(namespace) > own_creates:
            return
        logger.info("deleting namespace %s: nothing of ours is left in it", namespace)
        await self._remote.delete_namespace(namespace)
