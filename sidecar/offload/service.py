"""Creating and deleting a pod's remote objects: idempotent, ordered, rolled back, never lost.

Create and delete of one pod uid are ordered by the uid's lock, which a create holds for
its whole length (planning and validation included). interLink sends both from
goroutines, so a ``/delete`` can arrive before its ``/create`` or while it runs:

* the delete is journalled at once (before it waits for the lock), with a tombstone;
* a create of a tombstoned uid writes nothing and answers 409 (``deleted_first``);
* a create already running (or waiting for the lock) when its delete arrives notices
  the tombstone before its next write and stops (409); the delete is answered at once
  and the janitor, woken when the create ends, removes whatever it had written. A
  create that finished first is simply deleted after it.

Create: translate, validate every object against the schema (422 and no write on
failure), return the existing remote pod if there is one, else create the namespace,
the copied ConfigMaps, Secrets and PVCs, then the pod. An AlreadyExists on an object
carrying the same pod uid label is ours (a repeated or interrupted earlier create) and
counts as success; on any other failure, what this call created is removed again,
newest first, and the error says what failed. While a create runs, ``creating_since``
tells ``/status`` so (the pod is reported waiting, never gone).

Delete: recorded in the journal first, then attempted; whatever the remote cluster
does, the answer is 200 and the janitor finishes the job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AbstractAsyncContextManager

from metrics import Metrics
from sidecar.core import naming
from sidecar.core.pods import CreateRequest, PodRef
from sidecar.core.shape import JsonObject, PluginError
from sidecar.offload.cleanup import Cleaner
from sidecar.offload.journal import DeleteJournal, DeleteNotRecorded, clip
from sidecar.offload.locks import ActivityCounter, KeyedLocks
from sidecar.offload.plan import OffloadPlan
from sidecar.offload.translate import build_plan, remote_namespace_for
from sidecar.offload.validation import schema_version, validate_in_thread
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError, RemoteForbidden, RemoteUnreachable
from sidecar.settings import K8sSettings, MeshSettings, OffloadingSettings
from sidecar.status.cache import StatusCache, made_for, owner_of

logger = logging.getLogger(__name__)

# A create racing the deletion of its (emptied) namespace is refused with this; the
# namespace is then recreated and the create tried again.
_NAMESPACE_TERMINATING = "because it is being terminated"
_CREATE_ATTEMPTS = 3


def _namespace_gone(exc: RemoteError, namespace: str) -> bool:
    """A write refused because the namespace is terminating (403) or no longer exists
    (404 'namespaces "<name>" not found': deleted behind our back while we believed it
    there)."""
    if _NAMESPACE_TERMINATING in exc.message:
        return True
    return exc.not_found and f'namespaces "{namespace}" not found' in exc.message


class DeletedFirst(PluginError):
    """The pod's ``/delete`` arrived before its create finished: nothing (more) is written
    (409: interLink sends create and delete from goroutines, the delete came first)."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


class CreateFailed(PluginError):
    """A create that failed remotely (and was rolled back), or ran past its deadline."""


def _describe(obj: JsonObject) -> str:
    return f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')}"


class Offloader:
    def __init__(
        self,
        *,
        remote: RemoteCluster,
        journal: DeleteJournal,
        offloading: OffloadingSettings,
        mesh: MeshSettings,
        k8s: K8sSettings,
        metrics: Metrics,
        cache: StatusCache | None = None,
        create_deadline: float = 100.0,
    ) -> None:
        self.remote = remote
        self._cache = cache
        self.journal = journal
        self._offloading = offloading
        self._mesh = mesh
        self._configured_version = k8s.validation_version
        self._create_deadline = create_deadline
        self._schema: str | None = None
        self._metrics = metrics
        self._locks = KeyedLocks()
        self._creating: dict[str, tuple[float, int]] = {}
        """uid -> (wall-clock start, number) of its creates running or waiting for the lock."""
        self.activity = ActivityCounter()
        self.cleaner = Cleaner(remote, self.activity, cache=cache)
        self.janitor_wakeup = asyncio.Event()

    @property
    def offloading(self) -> OffloadingSettings:
        """The ``[offloading]`` settings (the janitor's orphan sweep reads its grace)."""
        return self._offloading

    async def schema(self) -> str:
        """The schema version to validate with (configured, else the remote server's)."""
        if self._schema is None:
            version = self._configured_version
            if not version:
                version = str((await self.remote.version()).get("gitVersion", ""))
            # In a thread: the first call lists kubernetes-validate's schema directory.
            self._schema = await asyncio.to_thread(schema_version, version)
            logger.info("validating remote objects with the Kubernetes %s schema", self._schema)
        return self._schema

    def plan(self, request: CreateRequest) -> OffloadPlan:
        plan = build_plan(request, offloading=self._offloading, mesh_settings=self._mesh)
        for warning in plan.warnings:
            logger.warning("%s", warning)
        return plan

    def hold_uid(self, uid: str) -> AbstractAsyncContextManager[None]:
        """The per-pod-uid lock creates and deletes hold; the orphan sweep takes it too,
        so it waits for a create in flight instead of racing it."""
        return self._locks.hold(uid)

    def creating_since(self, uid: str) -> float | None:
        """Wall-clock start of the create of ``uid`` running in this process, if any."""
        entry = self._creating.get(uid)
        return entry[0] if entry else None

    async def create(self, request: CreateRequest) -> str:
        """Offload the pod; returns the remote pod uid (the JID). Raises DeletedFirst
        when the pod's delete came first, CreateFailed when the remote refused."""
        uid = request.ref.uid
        since, count = self._creating.get(uid, (time.time(), 0))
        self._creating[uid] = (since, count + 1)
        writing: list[str] = []  # the remote namespace, once this create starts writing
        try:
            async with asyncio.timeout(self._create_deadline) as deadline:
                async with self._locks.hold(uid):
                    return await self._create_locked(request, writing)
        except DeletedFirst:
            self._metrics.creates.labels("deleted_first").inc()
            raise
        except TimeoutError:
            if not deadline.expired():
                raise
            raise await self._overdue(request.ref, writing) from None
        finally:
            since, count = self._creating[uid]
            if count == 1:
                del self._creating[uid]
                if uid in self.journal:
                    self.janitor_wakeup.set()  # a delete came meanwhile: finish it now
            else:
                self._creating[uid] = (since, count - 1)

    def _check_not_deleted(self, ref: PodRef) -> None:
        deleted_at = self.journal.deleted_at(ref.uid)
        if deleted_at is not None:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(deleted_at))
            raise DeletedFirst(
                f"pod {ref.namespace}/{ref.name} (uid {ref.uid}) was deleted at {when}, "
                "before its create finished: not offloaded (anything already written "
                "remotely is being removed)"
            )

    def _check_uid_not_taken(self, ref: PodRef) -> None:
        """A pod uid names one local pod: a create of it for another namespace or name
        (a collision, or a forged body) is refused, never mixed with the remote pod of
        the first (the status cache and every label lookup go by uid)."""
        known = self._cache.get(ref.uid) if self._cache is not None else None
        if known is not None and not made_for(known, ref):
            owner_namespace, owner_name = owner_of(known) or ("", "")
            remote = known.get("metadata") or {}
            self._metrics.creates.labels("invalid").inc()
            raise CreateFailed(
                409,
                f"pod uid {ref.uid} already belongs to pod {owner_namespace}/{owner_name}, "
                f"offloaded as {remote.get('namespace')}/{remote.get('name')}; not offloading "
                f"{ref.namespace}/{ref.name} with the same uid",
            )

    async def _overdue(self, ref: PodRef, writing: list[str]) -> CreateFailed:
        """The create ran past ``app.create_deadline_seconds`` (interLink gives up on a call
        without response headers after 120 s, and the pod then fails locally): what it
        wrote is handed to the janitor, to be removed by label like a rolled-back create."""
        self._metrics.creates.labels("failed").inc()
        where = ""
        if writing:
            await self.journal.add(ref.uid, namespace=writing[0], name=ref.name, tombstone=False)
            self.janitor_wakeup.set()
            where = "; what it had written remotely is being removed"
        return CreateFailed(
            504,
            f"creating pod {ref.namespace}/{ref.name} (uid {ref.uid}) did not finish within "
            f"{self._create_deadline:.0f} s (app.create_deadline_seconds){where}",
        )

    async def _create_locked(self, request: CreateRequest, writing: list[str]) -> str:
        self._check_not_deleted(request.ref)
        try:
            plan = self.plan(request)
            await validate_in_thread(plan.objects(), await self.schema())
        except Exception:
            self._metrics.creates.labels("invalid").inc()
            raise
        async with self.activity.active(plan.namespace):
            self._check_not_deleted(plan.ref)
            self._check_uid_not_taken(plan.ref)
            existing = await self._existing_pod(plan)
            if existing is not None:
                self._metrics.creates.labels("existing").inc()
                await self._adopted(plan.ref.uid)
                self._remember(existing)
                logger.info(
                    "pod %s/%s (uid %s) is already offloaded: same JID",
                    plan.ref.namespace,
                    plan.ref.name,
                    plan.ref.uid,
                )
                return str(existing["metadata"]["uid"])
            writing.append(plan.namespace)
            for attempt in range(1, _CREATE_ATTEMPTS + 1):
                try:
                    pod = await self._create_all(plan)
                except RemoteError as exc:
                    if _namespace_gone(exc, plan.namespace) and attempt < _CREATE_ATTEMPTS:
                        self.remote.forget_namespace(plan.namespace)
                        continue
                    raise
                break
        await self._adopted(plan.ref.uid)
        self._metrics.creates.labels("created").inc()
        self._remember(pod)
        logger.info(
            "offloaded %s/%s (uid %s) as %s/%s",
            plan.ref.namespace,
            plan.ref.name,
            plan.ref.uid,
            plan.namespace,
            pod["metadata"]["name"],
        )
        return str(pod["metadata"]["uid"])

    async def _existing_pod(self, plan: OffloadPlan) -> JsonObject | None:
        """The remote pod of this local pod, if it was offloaded before. A confirmed
        status cache holds every remote pod of ours (the watch's LIST, and every pod
        this process created, put there at once): no remote read. Otherwise a
        label-selected LIST (a write that meets an existing pod would find it too, but
        an upstream-made pod can have another name)."""
        cache = self._cache
        if cache is not None and cache.confirmed:
            return cache.get(plan.ref.uid)
        return await self.remote.find_pod(plan.namespace, plan.ref.uid)

    async def _adopted(self, uid: str) -> None:
        """A journal entry of this (not deleted) uid holds the leftovers of an earlier
        failed rollback of the same create; this create adopted them (AlreadyExists with
        our label), so the janitor must not delete them any more."""
        if uid in self.journal:
            self.cleaner.forget(uid)
            await self.journal.remove(uid)

    def _remember(self, pod: JsonObject) -> None:
        """Put the pod in the status cache now: a /status right after /create must not
        find it missing because the watch event is still on its way."""
        if self._cache is not None:
            self._cache.upsert(pod)

    async def _create_all(self, plan: OffloadPlan) -> JsonObject:
        created: list[JsonObject] = []
        namespace_created = False
        current = f"Namespace {plan.namespace}"
        try:
            namespace_created = await self.remote.ensure_namespace(plan.namespace)
            # A /delete of this pod that arrived meanwhile stops the create before each
            # step; the janitor, woken when this create ends, removes what was written.
            self._check_not_deleted(plan.ref)
            data = plan.data()
            # The data objects do not depend on each other: sent together. The pod
            # mounts them, so it comes after all of them.
            results = await asyncio.gather(
                *(self._create_owned(plan, obj) for obj in data), return_exceptions=True
            )
            failure: BaseException | None = None
            for obj, result in zip(data, results, strict=True):
                if isinstance(result, BaseException):
                    if failure is None:
                        failure, current = result, _describe(obj)
                elif result[1]:
                    created.append(result[0])
            if failure is not None:
                raise failure
            self._check_not_deleted(plan.ref)
            current = _describe(plan.pod)
            pod, new = await self._create_owned(plan, plan.pod)
            if new:
                created.append(pod)
            self._check_not_deleted(plan.ref)
            return pod
        except RemoteError as exc:
            if _namespace_gone(exc, plan.namespace):
                raise  # nothing of ours can be in it: _create_locked makes it again
            undone = await self._roll_back(plan, created, namespace_created)
            self._metrics.creates.labels("failed").inc()
            # One table (RemoteError.plugin_status): refused by validation or admission
            # (PodSecurity, quota: 403 too): the pod's fault (422); by RBAC: the
            # sidecar's credentials (502, with a hint); no answer: 503; else 502.
            rbac = isinstance(exc, RemoteForbidden) and exc.by_rbac
            status = exc.plugin_status()
            hint = (
                " (the sidecar's remote credentials lack this permission:"
                " see manifests/rbac/remote-rbac.yaml)"
                if rbac
                else ""
            )
            raise CreateFailed(
                status,
                f"creating {current} in namespace {plan.namespace} failed: {exc}{hint}; {undone}",
            ) from None

    async def _create_owned(self, plan: OffloadPlan, obj: JsonObject) -> tuple[JsonObject, bool]:
        """Create ``obj``; (object, True) if this call created it, (existing, False) if
        it already existed and is ours (or is a shared PVC)."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            return await self.remote.create(kind, plan.namespace, obj), True
        except RemoteError as exc:
            if not exc.already_exists:
                raise
        existing = await self.remote.read(kind, plan.namespace, name)
        owner = ((existing.get("metadata") or {}).get("labels") or {}).get(naming.POD_UID_LABEL)
        if owner == plan.ref.uid or kind == "PersistentVolumeClaim":
            return existing, False
        raise RemoteError(
            409, "AlreadyExists", f"{kind} {name} exists and belongs to pod uid {owner or '(none)'}"
        )

    async def _roll_back(
        self, plan: OffloadPlan, created: list[JsonObject], namespace_created: bool
    ) -> str:
        """Delete what this call created, newest first; hand leftovers to the janitor."""
        try:
            for obj in reversed(created):
                await self.remote.delete(obj["kind"], plan.namespace, obj["metadata"]["name"])
            if namespace_created:
                await self.cleaner.delete_namespace_if_empty(plan.namespace, own_creates=1)
        except RemoteError as exc:
            await self.journal.add(
                plan.ref.uid, namespace=plan.namespace, name=plan.ref.name, tombstone=False
            )
            self.janitor_wakeup.set()
            return f"removing what this call created failed too ({exc}); it will be retried"
        return f"removed the {len(created)} object(s) this call had created"

    async def delete(self, ref: PodRef) -> bool:
        """Remove the pod's remote objects; True when done now, False when the janitor
        will finish. Never raises for remote failures. Raises InvalidEntry (the journal
        refuses the uid or namespace: nothing is sent) and DeleteNotRecorded (not
        finished now, and the journal cannot be written: the caller must not promise
        it; the janitor still retries it from memory)."""
        namespace = remote_namespace_for(ref.namespace, self._offloading)
        # Journalled (with its tombstone) before waiting for the lock: a create running
        # now sees the tombstone at its next write and stops, one not started yet refuses.
        # A journal that cannot be written still holds the entry in memory: the delete is
        # tried at once all the same.
        durable = await self.journal.add(
            ref.uid, namespace=namespace, name=ref.name, tombstone=True
        )
        if self.creating_since(ref.uid) is not None:
            # Its create is running (or waiting for the lock): it stops at its next write,
            # and the janitor, woken when it ends, removes what it wrote. Not waited for
            # here: a create can hang in a slow admission webhook for 30 s.
            done = False
        else:
            async with self._locks.hold(ref.uid):
                done = await self.attempt_cleanup(ref.uid, namespace)
        if not done:
            self.janitor_wakeup.set()
        if not done and not durable:
            self._metrics.deletes.labels("not_recorded").inc()
            entry = self.journal.get(ref.uid)
            message = (
                f"pod {ref.namespace}/{ref.name} (uid {ref.uid}): the remote delete did not "
                f"finish ({entry.last_error if entry and entry.last_error else 'in progress'})"
                f" and could not be recorded ({self.journal.problem}); retried from memory "
                "until the sidecar restarts"
            )
            logger.error("%s", message)
            raise DeleteNotRecorded(message)
        self._metrics.deletes.labels("done" if done else "deferred").inc()
        return done

    async def delete_held(self, uid: str, namespace: str, name: str) -> bool:
        """What ``/delete`` does, for a caller that already holds the uid's lock (the
        orphan reaper): journalled with its tombstone, then cleaned up; False when the
        janitor (woken here) finishes it (from memory if the journal cannot be
        written: the reaper finds the pod again after a restart)."""
        await self.journal.add(uid, namespace=namespace, name=name, tombstone=True)
        done = await self.attempt_cleanup(uid, namespace)
        if not done:
            self.janitor_wakeup.set()
        return done

    async def retry_delete(self, pod_uid: str, namespace: str) -> bool:
        """The janitor's attempt: like ``attempt_cleanup``, under the pod's lock; not
        while a create of the pod runs (the janitor is woken when it ends)."""
        if self.creating_since(pod_uid) is not None:
            return False
        async with self._locks.hold(pod_uid):
            return await self.attempt_cleanup(pod_uid, namespace)

    async def attempt_cleanup(self, pod_uid: str, namespace: str) -> bool:
        """One cleanup attempt for a journalled delete; removes the entry when done,
        else records why in it (the janitor's retry cap counts attempts the remote API
        server answered)."""
        try:
            done = await self.cleaner.cleanup(namespace, pod_uid)
        except RemoteError as exc:
            why = clip(str(exc), 300)
            logger.warning("delete of pod uid %s in %s not finished: %s", pod_uid, namespace, why)
            answered = not isinstance(exc, RemoteUnreachable)
            self.journal.note_failure(pod_uid, why, answered=answered)
            return False
        if done:
            await self.journal.remove(pod_uid)
        else:
            why = "its pods are still terminating (grace period or finalizers)"
            self.journal.note_failure(pod_uid, why, answered=True)
        return done

    def can_finish_now(self, pod_uid: str) -> bool:
        """The pod of this journalled delete was deleted by name and the watch has seen
        it go: its next attempt finishes it without a remote read."""
        return self.cleaner.awaiting_gone(pod_uid)

    def awaiting_watch(self) -> bool:
        """Whether a journalled delete waits for the watch to see its pod go."""
        return self.cleaner.awaiting()

    def note_retry(self) -> None:
        self._metrics.janitor_retries.inc()
