"""The status cache: the last known remote pod of every local pod uid, kept by the watcher.

``/status`` reads only this (no remote call on the request path). Besides the pods it
holds whether its content is *confirmed*: true after a successful LIST while the watch
that follows it is healthy; false from the start and whenever the watcher cannot reach
the remote API server, so ``/status`` answers 503 instead of presenting old states as
current. It also remembers pods that vanished (DELETED events), so a pod deleted behind
the sidecar's back is reported terminated with that reason and time. That memory is
bounded (``VANISHED_KEEP_SECONDS``, ``VANISHED_MAX``): a pod forgotten there is still
reported terminated, only with a plainer message (``/status`` knows from the pod's
``JobID`` annotation that it had a remote pod).

Memory: a pod is kept with only the fields its readers use (``_slim``: a kwok pod takes
4 KB here, 15 KB as parsed from the API server, 7.7 KB of it without managedFields):
``/status`` (the mapping), the tunnels (``sidecar.tunnels``), the orphan sweep,
``/getLogs``, the uid check of ``/create`` and the delete path. A reader of another
field must add it there.

Speed: the encoded ``/status`` answer about a pod is kept with the pod
(``answer``/``keep_answer``), for the request it was made for, until a watch event, a
re-list or ``/create`` replaces or removes the pod.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sidecar.core import naming
from sidecar.core.pods import PodRef
from sidecar.core.shape import JsonObject


def _uid_of(pod: JsonObject) -> str | None:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    uid = labels.get(naming.POD_UID_LABEL)
    return uid if isinstance(uid, str) and uid else None


def owner_of(pod: JsonObject) -> tuple[str, str] | None:
    """(namespace, name) of the local pod a remote object was made for, from its source
    annotations; None when it carries none (made by an older plugin)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    namespace = annotations.get(naming.SOURCE_NAMESPACE_ANNOTATION)
    name = annotations.get(naming.SOURCE_NAME_ANNOTATION)
    if isinstance(namespace, str) and isinstance(name, str):
        return namespace, name
    return None


def made_for(pod: JsonObject, ref: PodRef) -> bool:
    """Whether remote ``pod`` was made for local pod ``ref`` (or carries no source
    annotations to say otherwise): a uid is only trusted with the pod it came with."""
    return owner_of(pod) in (None, (ref.namespace, ref.name))


# What is kept of a remote pod, by its readers:
# * /status (sidecar.status.mapping): status.phase, reason, message, the Initialized and
#   PodScheduled conditions (type, status, reason, message), the container statuses'
#   passed-through fields; metadata.uid (the JID) and the source annotations (made_for);
# * the tunnels (sidecar.tunnels): status.podIP and phase, metadata.deletionTimestamp,
#   annotations and labels, spec.containers[].ports;
# * the orphan sweep: metadata.creationTimestamp, name, namespace, uid, the labels and
#   annotations, status.phase; /getLogs: metadata.name, the container names;
# * the delete path (sidecar.offload): metadata name, namespace, uid, labels,
#   annotations, resourceVersion, deletionTimestamp; spec.volumes (ConfigMap, Secret,
#   projected and PVC sources) and the containers' env/envFrom references.
# Dropped, e.g.: managedFields (often half of a pod's JSON), the spec's scheduling and
# defaulted fields, its containers' images and resources, the other conditions and every
# condition's times, hostIP, podIPs.
_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",
    "annotations",
)
_SPEC = ("restartPolicy", "volumes")
_CONTAINER = ("name", "restartPolicy", "ports", "env", "envFrom")
_STATUS = ("phase", "reason", "message", "podIP")
_CONDITION_TYPES = ("Initialized", "PodScheduled")
"""The conditions the mapping reads (native sidecars started; why not scheduled)."""
_CONDITION = ("type", "status", "reason", "message")
_CONTAINER_STATUS = (
    "name",
    "state",
    "lastState",
    "ready",
    "restartCount",
    "started",
    "image",
    "imageID",
    "containerID",
)


def _pick(obj: Any, keys: Iterable[str]) -> JsonObject:
    if not isinstance(obj, dict):
        return {}
    return {key: obj[key] for key in keys if key in obj}


def _picks(items: Any, keys: Iterable[str]) -> list[JsonObject]:
    return [_pick(item, keys) for item in items] if isinstance(items, list) else []


def _slim_status(status: Any) -> JsonObject:
    slim = _pick(status, _STATUS)
    if not isinstance(status, dict):
        return slim
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        slim["conditions"] = [
            _pick(c, _CONDITION)
            for c in conditions
            if isinstance(c, dict) and c.get("type") in _CONDITION_TYPES
        ]
    for key in ("containerStatuses", "initContainerStatuses"):
        if key in status:
            slim[key] = _picks(status[key], _CONTAINER_STATUS)
    return slim


def _slim(pod: JsonObject) -> JsonObject:
    """A new pod object with only what the cache's readers use (see above); the values
    kept are ``pod``'s own, not copies."""
    spec = pod.get("spec")
    slim_spec = _pick(spec, _SPEC)
    if isinstance(spec, dict):
        for key in ("initContainers", "containers"):
            if key in spec:
                slim_spec[key] = _picks(spec[key], _CONTAINER)
    return {
        "metadata": _pick(pod.get("metadata"), _META),
        "spec": slim_spec,
        "status": _slim_status(pod.get("status")),
    }


def _slim_in_place(pod: JsonObject) -> JsonObject:
    """``_slim``, in ``pod`` itself: the watcher holds the list of a LIST while it
    watches, so its pods must shrink where they are."""
    slim = _slim(pod)
    pod.clear()
    pod.update(slim)
    return pod


def _version(pod: JsonObject) -> int:
    try:
        return int((pod.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


VANISHED_KEEP_SECONDS = 3600.0
"""How long a vanished pod is remembered. interLink polls a pod every 5 s until it is
terminal, so its first poll after the deletion reads it within seconds."""
VANISHED_MAX = 10_000
"""At most this many vanished pods are remembered (oldest forgotten first): about
3 MB, whatever the churn."""


@dataclass(frozen=True, slots=True)
class Vanished:
    """A remote pod that was deleted: when, and where it lived."""

    at: float
    namespace: str
    name: str


class StatusCache:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        """Wall clock (tests pass their own)."""
        self._pods: dict[str, JsonObject] = {}
        self._answers: dict[str, tuple[JsonObject, object, bytes]] = {}
        """Per pod uid: the cached pod an answer was made from, the request it was made
        for (``key``), and the encoded answer. Dropped with the pod's next change."""
        self._vanished: OrderedDict[str, Vanished] = OrderedDict()
        """Oldest first. An OrderedDict: a dict emptied from the front slows down its
        iteration (deleted slots are skipped one by one until it is resized)."""
        self.confirmed = False
        self.unconfirmed_since = time.time()
        self.unconfirmed_reason = "not synced yet"
        self.last_update = 0.0
        """Monotonic time of the last event, list or bookmark."""
        self.changed = asyncio.Event()
        """Set whenever a pod is added, changed or removed (the tunnel feeder waits on it)."""

    # --- reads ------------------------------------------------------------------------

    def pods(self) -> list[JsonObject]:
        return list(self._pods.values())

    def get(self, pod_uid: str) -> JsonObject | None:
        return self._pods.get(pod_uid)

    def get_for(self, ref: PodRef) -> JsonObject | None:
        """The remote pod of local pod ``ref``: the one with its uid, if it was made for
        that namespace and name (a uid is only trusted with the pod it came with: a body
        naming another pod with the same uid must not read, or be told, its JID)."""
        pod = self._pods.get(ref.uid)
        return pod if pod is not None and made_for(pod, ref) else None

    def vanished(self, pod_uid: str) -> Vanished | None:
        return self._vanished.get(pod_uid)

    def answer(self, pod_uid: str, pod: JsonObject, key: object) -> bytes | None:
        """The encoded answer kept for cached ``pod`` and a request with ``key``, if any:
        made from this very pod object (a newer one replaces it, and drops the answer)
        and for an equal key (another request about the same pod gets its own)."""
        kept = self._answers.get(pod_uid)
        if kept is None or kept[0] is not pod or kept[1] != key:
            return None
        return kept[2]

    def keep_answer(self, pod_uid: str, pod: JsonObject, key: object, encoded: bytes) -> None:
        """Keep ``encoded``, the answer about ``pod`` for a request with ``key`` (the
        last one asked; interLink asks about a pod with the same pod every time).
        Only for the pod cached now: one replaced meanwhile gets no answer kept."""
        if self._pods.get(pod_uid) is pod:
            self._answers[pod_uid] = (pod, key, encoded)

    def status_changed(self, pod: JsonObject) -> bool:
        """Whether ``pod`` (from a watch event) carries another ``status`` than the cached
        one, as far as the cache keeps it: a new pod, or a change the virtual kubelet
        will see. Metadata-only updates (labels, the deletion mark) are not, nor changes
        of status fields nobody reads (e.g. a condition's transition time)."""
        uid = _uid_of(pod)
        cached = self._pods.get(uid) if uid else None
        return cached is None or cached.get("status") != _slim_status(pod.get("status"))

    def vanished_count(self) -> int:
        return len(self._vanished)

    def __len__(self) -> int:
        return len(self._pods)

    def phases(self) -> Counter[str]:
        return Counter(
            str((p.get("status") or {}).get("phase") or "Unknown") for p in self._pods.values()
        )

    def age_seconds(self) -> float:
        return time.monotonic() - self.last_update if self.last_update else 0.0

    # --- writes (the watcher, and /create for the pod it just made) ---------------------

    def replace_all(self, pods: list[JsonObject]) -> None:
        """A fresh LIST: the complete truth. Pods missing from it have vanished. The
        pods are slimmed in place (``_slim_in_place``)."""
        fresh = {uid: _slim_in_place(pod) for pod in pods if (uid := _uid_of(pod))}
        for uid, old in self._pods.items():
            if uid not in fresh:
                self._remember_vanished(uid, old)
        self._pods = fresh
        self._answers = {}
        for uid in fresh:
            self._vanished.pop(uid, None)
        self.touch()
        self.changed.set()

    def upsert(self, pod: JsonObject) -> bool:
        """Store ``pod`` (slimmed: a new object) unless the cache already has a newer
        version; True if stored."""
        uid = _uid_of(pod)
        if uid is None:
            return False
        current = self._pods.get(uid)
        if current is not None and _version(current) > _version(pod):
            return False
        self._pods[uid] = _slim(pod)
        self._answers.pop(uid, None)
        self._vanished.pop(uid, None)
        self.touch()
        self.changed.set()
        return True

    def remove(self, pod: JsonObject) -> None:
        uid = _uid_of(pod)
        if uid is None:
            return
        current = self._pods.get(uid)
        if current is not None and _version(current) > _version(pod):
            return  # a newer pod for the same uid (re-created) is already here
        self._pods.pop(uid, None)
        self._answers.pop(uid, None)
        self._remember_vanished(uid, pod)
        self.touch()
        self.changed.set()

    def _remember_vanished(self, uid: str, pod: JsonObject) -> None:
        """Remember ``pod`` as vanished now; forget the oldest beyond the bounds."""
        now = self._clock()
        meta = pod.get("metadata") or {}
        self._vanished[uid] = Vanished(now, meta.get("namespace", ""), meta.get("name", ""))
        self._vanished.move_to_end(uid)
        cutoff = now - VANISHED_KEEP_SECONDS
        while self._vanished:
            oldest = next(iter(self._vanished.values()))
            if oldest.at >= cutoff and len(self._vanished) <= VANISHED_MAX:
                break
            self._vanished.popitem(last=False)

    def touch(self) -> None:
        self.last_update = time.monotonic()

    def confirm(self) -> None:
        self.confirmed = True

    def unconfirm(self, reason: str) -> None:
        if self.confirmed:
            self.unconfirmed_since = time.time()
        self.confirmed = False
        self.unconfirmed_reason = reason

    def describe_unconfirmed(self) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.unconfirmed_since))
        return (
            f"remote pod status not confirmed since {stamp} ({self.unconfirmed_reason}); "
            "not reporting possibly stale states"
        )
