"""Why a pod interLink asks about has no remote pod in the status cache.

The answer decides between life and death for the local pod: interLink's virtual kubelet
makes an all-``terminated`` answer final (the pod turns Failed and is never polled
again), and it polls a pod from the moment it stores it, while its ``/create`` may still
be on the way or running here. So a pod is reported gone only when that is known:

* a create of it runs in this process: ``CREATING`` (waiting);
* the watch saw its remote pod deleted, or interLink deleted it: ``DELETED`` (terminated);
* no ``JobID`` annotation on the pod interLink sent: ``NOT_ARRIVED`` (waiting). The
  virtual kubelet adds ``JobID`` (our ``PodJID``) only after ``/create`` answered 200,
  so without it the create has not reached this process or has not finished; if it
  fails, the virtual kubelet marks the pod failed itself and stops polling it;
* a ``JobID`` but no remote pod: ``LOST`` (terminated). The create did succeed, and
  ``/status`` answers only from a confirmed cache (a full LIST, then a healthy watch),
  so the remote pod is gone: deleted while this process was not watching (it restarted
  since), or lost with the remote cluster's state. After a restart and relist this is
  the rule that reports such pods, once the vanished-pod memory is gone.
"""

from __future__ import annotations

from sidecar.core.shape import JsonObject
from sidecar.status.mapping import Absence, AbsenceKind

JOB_ID_ANNOTATION = "JobID"
"""Set by the virtual kubelet on the local pod once ``/create`` answered (our PodJID)."""


def why_absent(
    local: JsonObject,
    *,
    creating_since: float | None,
    deleted_at: float | None,
) -> Absence:
    """``creating_since``: start of a create of this pod running here; ``deleted_at``: when
    the remote pod was seen deleted, or interLink's ``/delete`` of it was accepted."""
    if creating_since is not None:
        return Absence(AbsenceKind.CREATING, creating_since)
    if deleted_at is not None:
        return Absence(AbsenceKind.DELETED, deleted_at)
    annotations = (local.get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, dict) or not annotations.get(JOB_ID_ANNOTATION):
        return Absence(AbsenceKind.NOT_ARRIVED)
    return Absence(AbsenceKind.LOST)
