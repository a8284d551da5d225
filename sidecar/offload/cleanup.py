"""Removing every remote object of one pod, and noting its namespace for removal.

Idempotent and safe to repeat: each call deletes what is still there and reports whether
the pod's objects are all gone. Pods terminate gracefully, so the first call after a
delete usually finds them still Terminating; the janitor calls again later.

Two ways, by what the status cache knows (its content confirmed by a healthy watch):

* *known pod* (the common path): the cache holds the remote pod, made by this sidecar
  (its source annotations say so), so its name and the
  names of the copies it mounts (ConfigMaps and Secrets named ``<name>-<pod uid>``) are
  known: one DELETE each, by name, whatever else the namespace holds (a plain pod costs
  one request). The pod is then *awaited*: no request until the watch sees it go, and
  the janitor's next attempt finds it gone from the cache and finishes (PVCs only if it
  mounted any);
* *by label* (the cache cannot tell: not confirmed, or it never saw the pod, e.g. a
  create that failed half-way; or the pod was made by upstream, whose copies' names
  may have lost the uid): label-selected LISTs of pods, ConfigMaps and Secrets, each
  found object deleted.

PVCs: only ones the sidecar created (annotation ``interlink.io/created-by``; never a
PVC the sidecar did not create) whose
``interlink.io/pvc-retention-policy`` is ``delete`` and that no remaining pod uses; a PVC
created for another pod of ours is left alone while that pod exists (or for its first
minute, while its pod may still be being created). A retained PVC loses its pod-uid
label: it outlives the pod, and keeps the namespace alive. Namespace: handed to the
``NamespaceReaper``, which deletes it when it carries our label, nothing of ours is left
in it and no create is in flight for it, deciding at most once per window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from sidecar.core import naming
from sidecar.core.shape import JsonObject
from sidecar.offload.locks import ActivityCounter
from sidecar.offload.namespace_reaper import NamespaceReaper
from sidecar.offload.ownership import CREATED_BY_ANNOTATION, CREATED_BY_VALUE
from sidecar.offload.volumes import PVC_RETENTION_ANNOTATION
from sidecar.remote.cluster import RemoteCluster
from sidecar.status.cache import StatusCache, owner_of

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


def _mounted_copies(pod: JsonObject, pod_uid: str) -> list[tuple[str, str]]:
    """(kind, name) of the ConfigMaps and Secrets ``pod`` mounts that are copies made
    for it: every copy is mounted (env references only name mounted copies), and every
    copy's name ends with the pod uid (``naming.scoped_name``)."""
    suffix = naming.sanitize(pod_uid)
    found: set[tuple[str, str]] = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        sources = [volume, *((volume.get("projected") or {}).get("sources") or [])]
        for source in sources:
            for key, kind, name_key in (
                ("configMap", "ConfigMap", "name"),
                ("secret", "Secret", "secretName" if source is volume else "name"),
            ):
                name = (source.get(key) or {}).get(name_key)
                if isinstance(name, str) and name.endswith(suffix):
                    found.add((kind, name))
    return sorted(found)


class Cleaner:
    def __init__(
        self,
        remote: RemoteCluster,
        activity: ActivityCounter,
        *,
        cache: StatusCache | None = None,
    ) -> None:
        self._remote = remote
        self._activity = activity
        self._cache = cache
        self.namespaces = (
            NamespaceReaper(self.delete_namespace_if_empty, cache) if cache is not None else None
        )
        """Where finished deletes note their namespace (the janitor runs it); without a
        cache, each finished delete checks its namespace at once."""
        self._awaited: dict[str, tuple[str, bool]] = {}
        """uid -> (its namespace, whether it mounts PVCs): pods deleted by name, whose
        end the watch shows."""

    def awaiting_gone(self, pod_uid: str) -> bool:
        """Whether the pod was deleted by name and the cache no longer holds it: the
        next attempt finishes without a remote read (the janitor makes it due now)."""
        cache = self._cache
        return (
            pod_uid in self._awaited
            and cache is not None
            and cache.confirmed
            and cache.get(pod_uid) is None
        )

    def awaiting(self) -> bool:
        """Whether any pod deleted by name has not been seen to go yet."""
        return bool(self._awaited)

    def forget(self, pod_uid: str) -> None:
        """The uid's delete is no longer pending (an adopting create took it over)."""
        self._awaited.pop(pod_uid, None)

    async def cleanup(self, namespace: str, pod_uid: str) -> bool:
        """Delete what is left of pod ``pod_uid``; True when nothing of it remains."""
        cache = self._cache
        if cache is not None and cache.confirmed:
            pod = cache.get(pod_uid)
            # A pod without our source annotations was made by an older plugin
            # (upstream), whose copies' names may have lost the uid: found by label.
            if pod is not None and owner_of(pod) is not None:
                await self._delete_known(pod, pod_uid)
                return False  # the watch shows its end; awaiting_gone() says when
            if pod_uid in self._awaited:
                # Where the pod was (the journal's namespace, unless the prefix changed).
                namespace, mounts_pvcs = self._awaited.pop(pod_uid)
                if mounts_pvcs:
                    await self._delete_unused_pvcs(namespace, pod_uid)
                await self._namespace_done(namespace)
                return True
        self._awaited.pop(pod_uid, None)
        return await self._cleanup_by_label(namespace, pod_uid)

    async def _delete_known(self, pod: JsonObject, pod_uid: str) -> None:
        """DELETE the cached pod and its mounted copies by name (a 404 is success),
        once: an accepted DELETE needs no repeating (the pod is marked for deletion;
        what keeps it is its grace period or a finalizer, which a repeat does not end)."""
        if pod_uid in self._awaited:
            return
        meta = _meta(pod)
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        targets = _mounted_copies(pod, pod_uid)
        if meta.get("deletionTimestamp") is None:
            targets.insert(0, ("Pod", name))
        # Independent deletes: sent together; the first failure is raised once all ended.
        results = await asyncio.gather(
            *(self._remote.delete(k, namespace, n) for k, n in targets), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self._awaited[pod_uid] = (namespace, bool(_claims(pod)))

    async def _cleanup_by_label(self, namespace: str, pod_uid: str) -> bool:
        remote = self._remote
        selector = naming.pod_selector(pod_uid)
        for kind in _KINDS_BY_UID:
            for obj in await remote.list_objects(kind, namespace, selector=selector):
                if _meta(obj).get("deletionTimestamp") is None:
                    await remote.delete(kind, namespace, _meta(obj)["name"])
        if await remote.list_objects("Pod", namespace, selector=selector, limit=1):
            return False  # still terminating; PVCs and namespace wait for them
        await self._delete_unused_pvcs(namespace, pod_uid)
        await self._namespace_done(namespace)
        return True

    async def _namespace_done(self, namespace: str) -> None:
        if self.namespaces is not None:
            self.namespaces.note(namespace)
        else:
            await self.delete_namespace_if_empty(namespace)

    async def _delete_unused_pvcs(self, namespace: str, pod_uid: str) -> None:
        pvcs = await self._remote.list_objects(
            "PersistentVolumeClaim", namespace, selector=naming.OURS_SELECTOR
        )
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
        for kind in (*_KINDS_BY_UID, "PersistentVolumeClaim"):
            # One object is enough to know the namespace is in use: reading all of them
            # cost every delete as much as the namespace holds (and its memory).
            if await self._remote.list_objects(
                kind, namespace, selector=naming.OURS_SELECTOR, limit=1
            ):
                return
        # No await between this check and the call: a create cannot slip in between.
        if self._activity.count(namespace) > own_creates:
            return
        logger.info("deleting namespace %s: nothing of ours is left in it", namespace)
        await self._remote.delete_namespace(namespace)
