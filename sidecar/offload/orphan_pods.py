"""Orphaned remote pods: found, reported on ``/orphans``, and reaped by policy.

interLink sends ``/delete`` once and never again; if the sidecar was down or the call
was lost, the remote pod of a local pod that no longer exists would run for ever. This
is the janitor's third loop. Each pass judges every remote pod of ours in the status
cache (no remote call: the watch keeps it) with ``orphan_rules.judge``, from what
interLink asked (``sidecar.status.asked``) and, with ``k8s.local_kubeconfig_path``, one
LIST of the local cluster's pods (only when some pod is old enough to be judged).

* **Report** (always): ``/orphans`` on the ops server lists each orphan with its
  evidence, when it was first seen and when it will be reaped;
  ``sidecar_janitor_orphan_pods`` counts them; one log line when a pod is first found
  orphaned, one when it is reaped (and one if it stops being one).
* **Reap** (``offloading.orphan_policy = delete``; the default ``report`` never
  deletes): an orphan is reaped at the first pass *after* the one that found it, so it
  has been on ``/orphans`` for a whole sweep interval first, and only if it is still an
  orphan then. Reaping goes the way a ``/delete`` goes: under the pod uid's lock
  (``Offloader.hold_uid``: a create in flight finishes first), checked again (not
  journalled, no create running, the same remote pod object, not asked about since),
  then ``Offloader.delete_held`` does what ``/delete`` does (journalled first, with its
  tombstone) and deletes everything of ours that belongs to the pod
  (the pod, its copied ConfigMaps and Secrets, its PVCs per their retention policy, the
  namespace when ours and empty); what does not finish at once is finished by the
  janitor's journal loop, also across restarts. Counted in
  ``sidecar_janitor_orphans_reaped_total{kind="Pod"}``.

The local read is not trusted in a pass where it contradicts interLink: a pod interLink
asked about shortly before the LIST but missing from it means the kubeconfig points at
the wrong cluster (or the read is inconsistent), and "not found" would otherwise reap
every pod. That pass falls back to the unpolled rule, and ``/orphans`` says why.

Contract: ``sweep`` makes one pass; it raises on a remote or journal failure (the
local read's failures are reported, not raised). ``run_forever`` makes a pass at once
and then every ``interval`` seconds (``sweep_interval``: a quarter of the window, at
most 60 s); it never returns and never raises anything but CancelledError: a failed
pass is logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from metrics import Metrics
from sidecar.core import naming
from sidecar.core.shape import JsonObject
from sidecar.offload.local_pods import LocalPodReader, LocalPods, LocalReadError
from sidecar.offload.orphan_rules import Evidence, EvidenceKind, LocalAnswer, PodFacts, judge
from sidecar.offload.service import Offloader
from sidecar.settings import OrphanPolicy
from sidecar.status.asked import AskedLog
from sidecar.status.cache import StatusCache

logger = logging.getLogger(__name__)

MAX_SWEEP_INTERVAL_SECONDS = 60.0


def sweep_interval(window: float) -> float:
    """A quarter of the window, at least 1 s, at most 60 s: an orphan is reported at
    most one interval after its window ends, and reaped one interval after that."""
    return max(1.0, min(window / 4, MAX_SWEEP_INTERVAL_SECONDS))


def liveness_gap(window: float) -> float:
    """The longest silence that does not break a virtual node's live stretch. The
    virtual kubelet asks every 5 s (plus one call per pod), so 30 s is six missed
    rounds; short test windows use a third of the window."""
    return min(30.0, window / 3)


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(meta: JsonObject) -> float | None:
    stamp = meta.get("creationTimestamp")
    try:
        return datetime.fromisoformat(stamp).timestamp() if isinstance(stamp, str) else None
    except ValueError:
        return None


@dataclass(slots=True)
class Orphan:
    pod_uid: str
    local_namespace: str
    local_name: str
    remote_namespace: str
    remote_name: str
    remote_uid: str
    """The remote pod object's own uid: reaping checks it is still the same object."""
    node: str
    phase: str
    evidence: Evidence
    first_seen: float
    """Wall-clock time of the pass that first found it."""
    first_pass: int

    def describe(self) -> str:
        return (
            f"{self.local_namespace}/{self.local_name} (uid {self.pod_uid}) as "
            f"{self.remote_namespace}/{self.remote_name}, {self.phase}"
        )


class OrphanPods:
    """The orphan-pod sweep's state: its passes, the current orphans, the report."""

    def __init__(
        self,
        *,
        cache: StatusCache,
        asked: AskedLog,
        offloader: Offloader,
        metrics: Metrics,
        window: float,
        policy: OrphanPolicy | str,
        local: LocalPodReader | None = None,
        interval: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if policy not in set(OrphanPolicy):
            allowed = ", ".join(OrphanPolicy)
            raise ValueError(f"orphan policy {policy!r}: expected one of {allowed}")
        self._cache = cache
        self._asked = asked
        self._offloader = offloader
        self._journal = offloader.journal
        self._metrics = metrics
        self._local = local
        self._wall = wall
        self.window = window
        self.policy = OrphanPolicy(policy)
        self.interval = interval if interval is not None else sweep_interval(window)
        self._orphans: dict[str, Orphan] = {}
        self._passes = 0
        self._last_pass: float | None = None
        self._skipped: str | None = None
        self._local_error: str | None = None
        self._reaped = 0

    def __len__(self) -> int:
        return len(self._orphans)

    # --- one pass --------------------------------------------------------------------

    async def sweep(self) -> None:
        """One pass (see the module docstring)."""
        self._passes += 1
        self._last_pass = now = self._wall()
        if not self._cache.confirmed:
            # A stale or half-synced cache could lack pods or hold dead ones: no verdicts.
            self._skipped = "remote pod status not confirmed: " + self._cache.describe_unconfirmed()
            return
        self._skipped = None
        pods = [p for p in self._cache.pods() if self._old_enough(p, now)]
        local = await self._read_local() if pods and self._local is not None else None
        found: dict[str, Orphan] = {}
        for pod in pods:
            orphan = self._judge(pod, now, local)
            if orphan is not None:
                found[orphan.pod_uid] = orphan
        for uid, orphan in found.items():
            if uid not in self._orphans:
                reap = (
                    "reaped after the next pass"
                    if self.policy is OrphanPolicy.DELETE
                    else "reported only"
                )
                logger.warning(
                    "orphan pod found: %s: %s (%s)", orphan.describe(), orphan.evidence.detail, reap
                )
        for uid, gone in self._orphans.items():
            if uid not in found and self._cache.get(uid) is not None:
                logger.info("pod %s is no longer judged orphaned", gone.describe())
        self._orphans = found
        self._publish()
        if self.policy is OrphanPolicy.DELETE:
            for orphan in list(found.values()):
                if orphan.first_pass < self._passes:
                    await self._reap(orphan)
        keep = {uid for p in self._cache.pods() if (uid := _pod_uid(p))}
        self._asked.prune(keep, older_than=self.window)

    def _old_enough(self, pod: JsonObject, now: float) -> bool:
        created = _created(pod.get("metadata") or {})
        return created is not None and now - created >= self.window

    async def _read_local(self) -> LocalPods | None:
        """The local pods, or None when they cannot be read or cannot be trusted."""
        assert self._local is not None
        started = self._asked.now()
        try:
            local = await self._local.list_pods()
        except LocalReadError as exc:
            self._local_failed(f"{exc}")
            return None
        # Pods interLink asked about just before the LIST existed locally then.
        recent = [
            uid
            for p in self._cache.pods()
            if (uid := _pod_uid(p))
            and (asked := self._asked.last_asked(uid)) is not None
            and started - self._asked.gap <= asked <= started
        ]
        missing = [uid for uid in recent if uid not in local.uids]
        if missing:
            self._local_failed(
                f"the local cluster has no pod with uid {missing[0]} although interLink "
                f"asked about it moments ago ({len(missing)} such pod(s)): is "
                "k8s.local_kubeconfig_path the virtual kubelet's cluster? Not used this pass"
            )
            return None
        if self._local_error is not None:
            logger.info("reading the local cluster's pods works again")
            self._local_error = None
        return local

    def _local_failed(self, message: str) -> None:
        if message != self._local_error:
            logger.warning("orphan sweep: local pods not read: %s", message)
        self._local_error = message

    def _judge(self, pod: JsonObject, now: float, local: LocalPods | None) -> Orphan | None:
        meta: JsonObject = pod.get("metadata") or {}
        uid = _pod_uid(pod)
        if not uid:
            return None
        annotations: JsonObject = meta.get("annotations") or {}
        local_namespace = str(annotations.get(naming.SOURCE_NAMESPACE_ANNOTATION) or "")
        local_name = str(annotations.get(naming.SOURCE_NAME_ANNOTATION) or "")
        node = str(annotations.get(naming.SOURCE_NODE_NAME_ANNOTATION) or "")
        phase = str((pod.get("status") or {}).get("phase") or "Unknown")
        created = _created(meta)
        facts = PodFacts(
            phase=phase,
            deleting=meta.get("deletionTimestamp") is not None,
            journalled=uid in self._journal,
            creating=self._offloader.creating_since(uid) is not None,
            age=now - created if created is not None else 0.0,
            unpolled_for=self._asked.unpolled_for(uid),
            node=node,
            node_live_for=self._asked.node_live_for(node),
            uptime=self._asked.uptime(),
            local=(
                local.answer(uid, local_namespace, local_name)
                if local is not None
                else LocalAnswer.UNKNOWN
            ),
        )
        evidence = judge(facts, window=self.window)
        if evidence is None:
            return None
        earlier = self._orphans.get(uid)
        return Orphan(
            pod_uid=uid,
            local_namespace=local_namespace,
            local_name=local_name,
            remote_namespace=str(meta.get("namespace") or ""),
            remote_name=str(meta.get("name") or ""),
            remote_uid=str(meta.get("uid") or ""),
            node=node,
            phase=phase,
            evidence=evidence,
            first_seen=earlier.first_seen if earlier else now,
            first_pass=earlier.first_pass if earlier else self._passes,
        )

    async def _reap(self, orphan: Orphan) -> None:
        uid = orphan.pod_uid
        offloader = self._offloader
        async with offloader.hold_uid(uid):
            # Checked again under the lock: a create in flight has finished, a /delete
            # may have come, the pod may have been asked about since this pass began.
            current = self._cache.get(uid)
            still = (
                uid not in self._journal
                and offloader.creating_since(uid) is None
                and current is not None
                and (current.get("metadata") or {}).get("uid") == orphan.remote_uid
                and (current.get("metadata") or {}).get("deletionTimestamp") is None
                and (
                    orphan.evidence.kind is not EvidenceKind.UNPOLLED
                    or self._asked.unpolled_for(uid) >= self.window
                )
            )
            if not still:
                self._orphans.pop(uid, None)
                self._publish()
                return
            # As a /delete would: journalled with its tombstone (the local pod is gone,
            # so a create of this uid arriving late must write nothing).
            done = await offloader.delete_held(
                uid, orphan.remote_namespace, orphan.local_name or uid
            )
        self._orphans.pop(uid, None)
        self._reaped += 1
        self._metrics.orphans_reaped.labels("Pod").inc()
        self._publish()
        logger.warning(
            "reaped orphan pod %s (%s): %s",
            orphan.describe(),
            orphan.evidence.detail,
            "all its objects are deleted" if done else "delete journalled, the janitor finishes it",
        )

    def _publish(self) -> None:
        self._metrics.orphan_pods.set(len(self._orphans))

    # --- the loop --------------------------------------------------------------------

    async def run_forever(self) -> None:
        """A pass at once, then every ``interval`` seconds; runs until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception:  # a failed pass must not end the janitor: logged, retried
                logger.exception("orphan pod sweep failed (next in %.0f s)", self.interval)
            await asyncio.sleep(self.interval)

    # --- the report ------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The ``/orphans`` body: the sweep's state and every current orphan."""
        asked = self._asked
        uptime = asked.uptime()
        return {
            "policy": self.policy,
            "window_seconds": self.window,
            "sweep_interval_seconds": self.interval,
            "uptime_seconds": round(uptime, 1),
            "sweeps": self._passes,
            "last_sweep": _iso(self._last_pass),
            "skipped": self._skipped,
            "unpolled_rule": self._unpolled_state(uptime),
            "local_read": {"enabled": self._local is not None, "error": self._local_error},
            "reaped": self._reaped,
            "orphans": [
                self._orphan_json(o) for o in sorted(self._orphans.values(), key=_first_seen)
            ],
        }

    def _unpolled_state(self, uptime: float) -> dict[str, Any]:
        asked = self._asked
        nodes = asked.nodes()
        live = {name: round(t, 1) for name, t in nodes.items()}
        any_live = asked.any_live_for()
        if uptime < self.window:
            reason: str | None = (
                f"up for {uptime:.0f} s, less than the window ({self.window:.0f} s)"
            )
        elif any_live < self.window:
            reason = (
                "interLink has not kept asking /status about pods for the window: "
                "a silent virtual kubelet may be down, so nothing is judged unpolled"
            )
        else:
            reason = None
        last_ping = asked.last_ping
        return {
            "judging": reason is None,
            "reason": reason,
            "live_seconds": round(any_live, 1),
            "nodes_live_seconds": live,
            "last_ping_seconds_ago": (
                round(asked.now() - last_ping, 1) if last_ping is not None else None
            ),
        }

    def _orphan_json(self, orphan: Orphan) -> dict[str, Any]:
        unpolled = self._asked.unpolled_for(orphan.pod_uid)
        reap_at = orphan.first_seen + self.interval if self.policy is OrphanPolicy.DELETE else None
        return {
            "pod_uid": orphan.pod_uid,
            "local": {"namespace": orphan.local_namespace, "name": orphan.local_name},
            "remote": {"namespace": orphan.remote_namespace, "name": orphan.remote_name},
            "node": orphan.node or None,
            "phase": orphan.phase,
            "evidence": orphan.evidence.kind.value,
            "detail": orphan.evidence.detail,
            "unpolled_seconds": round(unpolled),
            "first_seen": _iso(orphan.first_seen),
            "reap_at": _iso(reap_at),
        }


def _first_seen(orphan: Orphan) -> float:
    return orphan.first_seen


def _pod_uid(pod: JsonObject) -> str:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    uid = labels.get(naming.POD_UID_LABEL)
    return uid if isinstance(uid, str) else ""
