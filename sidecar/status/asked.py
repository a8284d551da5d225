"""Who asked about which pod, and when: the evidence that a local pod still exists.

Why this exists: interLink sends ``/delete`` once and never again, so a remote pod whose
delete was lost runs for ever. The sidecar cannot see the local cluster (unless
``k8s.local_kubeconfig_path`` is set), but it sees interLink's questions: the virtual
kubelet's status loop asks ``/status`` about every local pod that is not terminal,
one pod per call, every 5 s (``statusLoop`` in interLink's virtualkubelet.go), and
``/getLogs`` names a pod that ``kubectl logs`` just found locally. A remote pod nobody
asked about for a long time, while the same virtual node kept asking about others, has
no local pod any more. This module only records; ``sidecar.offload.orphan_rules``
judges.

Recorded, in monotonic seconds:

* per pod uid, the last ``/status`` entry or ``/getLogs`` call naming it;
* per virtual node (the ``spec.nodeName`` of the pods in ``/status`` calls), a *live
  stretch*: since when its calls have arrived with no gap longer than ``gap``
  seconds. A node silent for longer than ``gap`` is not live; when it speaks again a
  new stretch starts (after a virtual kubelet restart, its first rounds may not have
  reached every pod yet, so old silence is never held against a pod);
* the same stretch for all ``/status`` calls with pods together (for remote pods that
  carry no node name: made before the node annotation existed);
* the last ping (``/status []``), for the ``/orphans`` report only: a ping says
  interLink is up, not that any virtual kubelet's status loop runs.

Memory is bounded by ``prune``: the janitor's orphan sweep drops pods that have no
remote pod any more and nodes that fell silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from sidecar.core.shape import JsonObject


@dataclass(slots=True)
class Stretch:
    """An unbroken run of calls: the first one (``since``) and the latest (``last``)."""

    since: float
    last: float

    def extend(self, now: float, gap: float) -> None:
        if now - self.last > gap:
            self.since = now
        self.last = now

    def live_for(self, now: float, gap: float) -> float:
        """How long the run has lasted, if it is still going; 0 if it broke off."""
        return now - self.since if now - self.last <= gap else 0.0


class AskedLog:
    """The record of interLink's questions (see the module docstring)."""

    def __init__(self, *, gap: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap = gap
        """Longest silence that does not break a node's live stretch, in seconds."""
        self._clock = clock
        self.started = clock()
        self._asked: dict[str, float] = {}
        self._nodes: dict[str, Stretch] = {}
        self._any: Stretch | None = None
        self.last_ping: float | None = None

    # --- recording (the plugin API handlers) ---------------------------------------------

    def saw_status(self, pods: Iterable[JsonObject]) -> None:
        """A ``/status`` call arrived with these pods (``[]``: interLink's ping)."""
        now = self._clock()
        seen = False
        for pod in pods:
            meta = pod.get("metadata")
            uid = meta.get("uid") if isinstance(meta, dict) else None
            if not isinstance(uid, str) or not uid:
                continue
            seen = True
            self._asked[uid] = now
            spec = pod.get("spec")
            node = spec.get("nodeName") if isinstance(spec, dict) else None
            if isinstance(node, str) and node:
                self._nodes.setdefault(node, Stretch(now, now)).extend(now, self.gap)
        if not seen:
            self.last_ping = now
            return
        if self._any is None:
            self._any = Stretch(now, now)
        self._any.extend(now, self.gap)

    def saw_logs(self, pod_uid: str) -> None:
        """A ``/getLogs`` call named this pod (the local pod existed a moment ago)."""
        self._asked[pod_uid] = self._clock()

    # --- reading (the orphan sweep, /orphans) ----------------------------------------------

    def now(self) -> float:
        return self._clock()

    def uptime(self) -> float:
        return self._clock() - self.started

    def unpolled_for(self, pod_uid: str) -> float:
        """Seconds since interLink last asked about the pod; since the process started if
        it never did (nothing was asked before, as far as this process knows)."""
        return self._clock() - self._asked.get(pod_uid, self.started)

    def last_asked(self, pod_uid: str) -> float | None:
        return self._asked.get(pod_uid)

    def node_live_for(self, node: str) -> float:
        """How long ``node`` has kept asking with no gap longer than ``gap`` (0: silent
        now). The empty name means every node together."""
        stretch = self._nodes.get(node) if node else self._any
        return stretch.live_for(self._clock(), self.gap) if stretch is not None else 0.0

    def nodes(self) -> dict[str, float]:
        """Every node heard from, with how long it has been live (0: silent now)."""
        now = self._clock()
        return {name: s.live_for(now, self.gap) for name, s in sorted(self._nodes.items())}

    def any_live_for(self) -> float:
        return self.node_live_for("")

    # --- housekeeping ------------------------------------------------------------------

    def prune(self, keep: set[str], *, older_than: float) -> None:
        """Forget pods not in ``keep`` last asked about more than ``older_than`` seconds
        ago, and nodes silent for that long (a silent node is not live anyway)."""
        cutoff = self._clock() - older_than
        for uid in [u for u, at in self._asked.items() if at < cutoff and u not in keep]:
            del self._asked[uid]
        for node in [n for n, s in self._nodes.items() if s.last < cutoff]:
            del self._nodes[node]


# --- the plugin API's hook ------------------------------------------------------------

ASKED_KEY = web.AppKey("asked", AskedLog)
"""Where the plugin API app holds the record (set by ``sidecar.app``)."""


def note_status(app: web.Application, pods: Iterable[JsonObject]) -> None:
    """Record a ``/status`` call (no-op for an app built without a record)."""
    asked = app.get(ASKED_KEY)
    if asked is not None:
        asked.saw_status(pods)


def note_logs(app: web.Application, pod_uid: str) -> None:
    """Record a ``/getLogs`` call (no-op for an app built without a record)."""
    asked = app.get(ASKED_KEY)
    if asked is not None:
        asked.saw_logs(pod_uid)
