"""When a remote pod of ours is an orphan: the pure decision, no I/O.

A remote pod is an orphan when its local pod is gone and its ``/delete`` never came
(interLink sends it once; if the sidecar was down or the call was lost, the remote pod
would run for ever). Two kinds of evidence, in this order:

1. **The local cluster** (``k8s.local_kubeconfig_path`` set and its last read
   succeeded): definite. The local pod (namespace and name from the remote pod's
   annotations) exists with the same uid: never an orphan, whatever else holds (a
   finished pod's logs are still asked for). It does not exist, or exists with another
   uid (deleted and made again under the same name): an orphan, in any phase.
2. **Unpolled** (always available, used when the local answer is unknown): the virtual
   kubelet asks ``/status`` about each of its non-terminal local pods every 5 s, so a
   remote pod is an orphan when *all* of these hold:

   * it is not terminal (phase not Succeeded or Failed): the virtual kubelet never
     polls a terminal local pod again, so silence proves nothing about those;
   * nobody asked about it (``/status`` or ``/getLogs``) for the whole window
     (``offloading.orphan_after_seconds``);
   * its virtual node (annotation ``interlink.io/source.node_name``; all of interLink
     for pods without it) kept asking about other pods, with no long gap, for the
     whole window: a silent node may be a dead virtual kubelet or interLink, and its
     pods are never judged meanwhile;
   * the sidecar has been up for the whole window (after a restart nothing has been
     asked yet).

Never an orphan, whatever the evidence: a pod younger than the window (its create just
happened, and its ``/delete`` may still be on its way), a pod being deleted already, a
pod whose uid is in the delete journal (the janitor owns it), and a pod whose create is
running (a repeated ``/create`` proves its local pod exists). The reaper takes the pod
uid's lock and checks again before it deletes anything (``sidecar.offload.orphan_pods``).

Known blind spot of rule 2: a virtual node left with no non-terminal pod at all sends
no ``/status`` with pods, so it is indistinguishable from a dead one and its orphans
are never judged by this rule. The local read (rule 1) has no such gap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


class LocalAnswer(enum.Enum):
    """What the local cluster says about a remote pod's local pod."""

    UNKNOWN = "unknown"
    """No local read configured, or it failed this time."""
    EXISTS = "exists"
    NOT_FOUND = "not_found"
    REPLACED = "replaced"
    """A pod of that namespace and name exists, with another uid."""


class EvidenceKind(enum.Enum):
    UNPOLLED = "unpolled"
    LOCAL_POD_NOT_FOUND = "local_pod_not_found"
    LOCAL_POD_REPLACED = "local_pod_replaced"


@dataclass(frozen=True, slots=True)
class PodFacts:
    """Everything the decision needs about one remote pod, as durations in seconds."""

    phase: str
    deleting: bool
    """The remote pod has a deletionTimestamp."""
    journalled: bool
    """Its uid is in the delete journal."""
    creating: bool
    """A create of its uid is running (or waiting for the uid's lock)."""
    age: float
    """Since the remote pod was created."""
    unpolled_for: float
    """Since interLink last asked about it (since the sidecar started if never)."""
    node: str
    """Its virtual node ("" when unknown)."""
    node_live_for: float
    """How long its node (all of interLink when unknown) has kept asking (0: silent)."""
    uptime: float
    """How long the sidecar has been up."""
    local: LocalAnswer = LocalAnswer.UNKNOWN


@dataclass(frozen=True, slots=True)
class Evidence:
    kind: EvidenceKind
    detail: str
    """One line for people: what was observed."""


def judge(facts: PodFacts, *, window: float) -> Evidence | None:
    """The evidence that the pod is an orphan, or None (see the module docstring)."""
    if facts.journalled or facts.creating or facts.deleting or facts.age < window:
        return None
    if facts.local is LocalAnswer.EXISTS:
        return None
    if facts.local is LocalAnswer.NOT_FOUND:
        return Evidence(EvidenceKind.LOCAL_POD_NOT_FOUND, "the local pod does not exist")
    if facts.local is LocalAnswer.REPLACED:
        return Evidence(
            EvidenceKind.LOCAL_POD_REPLACED, "the local pod of that name has another uid"
        )
    if facts.phase in TERMINAL_PHASES:
        return None
    if facts.uptime < window or facts.unpolled_for < window:
        return None
    if facts.node_live_for < window:
        return None
    who = f"virtual node {facts.node}" if facts.node else "interLink"
    return Evidence(
        EvidenceKind.UNPOLLED,
        f"not asked about for {facts.unpolled_for:.0f} s while {who} kept asking about "
        f"other pods for {facts.node_live_for:.0f} s",
    )
