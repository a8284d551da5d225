"""Mapping a remote pod to interLink's ``PodStatus``.

interLink's virtual kubelet turns this answer into the local pod's state, with rules that
make silence dangerous (shared/reference/interlink-plugin-api.md §5):

* an empty ``containers`` list counts as "all containers terminated": the pod turns
  Succeeded. So every spec container always gets an entry, in spec order, with its
  exact name; a container with no remote status yet gets a ``waiting`` state whose
  reason says why;
* a pod left out keeps its last status for ever. A pod that is gone remotely is
  reported ``terminated`` with a non-zero exit code and a reason;
* timestamps must be RFC 3339 with a zone, or Go's decoder fails the whole answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sidecar.api.wire import JsonObject, PodRef

GONE_EXIT_CODE = 1
GONE_REASON = "RemotePodNotFound"
DELETED_REASON = "RemotePodDeleted"

# ContainerStatus fields passed through as they are (Kubernetes JSON names).
_PASSTHROUGH = ("ready", "restartCount", "started", "image", "imageID", "containerID")
_TIME_FIELDS = ("startedAt", "finishedAt")


def rfc3339(value: Any) -> Any:
    """``value`` as RFC 3339 in UTC with a ``Z``; None and non-strings stay as they are."""
    if not isinstance(value, str) or not value:
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _state(state: Any) -> JsonObject:
    """A ContainerState with timestamps normalised; unknown keys kept."""
    if not isinstance(state, dict):
        return {}
    result: JsonObject = {}
    for kind, detail in state.items():
        if isinstance(detail, dict):
            detail = {k: rfc3339(v) if k in _TIME_FIELDS else v for k, v in detail.items()}
        result[kind] = detail
    return result


def _spec_names(pod: JsonObject, list_name: str) -> list[str]:
    containers = (pod.get("spec") or {}).get(list_name) or []
    return [c["name"] for c in containers if isinstance(c, dict) and c.get("name")]


def _pending_reason(remote: JsonObject) -> tuple[str, str]:
    """Why a remote container has no status yet, from the pod's phase and conditions."""
    status = remote.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "False" and condition.get("type") == "PodScheduled":
            return (
                condition.get("reason") or "Unschedulable",
                condition.get("message") or "the remote pod is not scheduled",
            )
    phase = status.get("phase") or "Pending"
    message = status.get("message") or f"the remote pod is {phase}"
    return status.get("reason") or "ContainerCreating", message


def _container_status(
    name: str, remote_status: JsonObject | None, remote: JsonObject, now: str
) -> JsonObject:
    if remote_status is not None:
        entry: JsonObject = {"name": name, "state": _state(remote_status.get("state"))}
        if remote_status.get("lastState"):
            entry["lastState"] = _state(remote_status["lastState"])
        for key in _PASSTHROUGH:
            if key in remote_status:
                entry[key] = remote_status[key]
        if entry["state"]:
            return entry
    phase = (remote.get("status") or {}).get("phase")
    if phase in ("Failed", "Succeeded"):
        status = remote.get("status") or {}
        return {
            "name": name,
            "state": {
                "terminated": {
                    "exitCode": 0 if phase == "Succeeded" else GONE_EXIT_CODE,
                    "reason": status.get("reason") or phase,
                    "message": status.get("message") or f"the remote pod is {phase}",
                    "finishedAt": now,
                }
            },
        }
    reason, message = _pending_reason(remote)
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}


def _gone(name: str, message: str, now: str, reason: str = GONE_REASON) -> JsonObject:
    return {
        "name": name,
        "state": {
            "terminated": {
                "exitCode": GONE_EXIT_CODE,
                "reason": reason,
                "message": message,
                "finishedAt": now,
            }
        },
    }


def pod_status(
    local: JsonObject,
    ref: PodRef,
    remote: JsonObject | None,
    *,
    remote_location: str,
    deleted_at: float | None = None,
    now: datetime | None = None,
) -> JsonObject:
    """The ``PodStatus`` of ``local`` given its remote pod (None: not there remotely;
    ``deleted_at``: when the watch saw it deleted, if it did)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result: JsonObject = {"name": ref.name, "UID": ref.uid, "namespace": ref.namespace}
    lists = (("initContainers", "initContainerStatuses"), ("containers", "containerStatuses"))
    if remote is None:
        if deleted_at is not None:
            when = datetime.fromtimestamp(deleted_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            reason = DELETED_REASON
            message = (
                f"the remote pod in {remote_location} was deleted at {when} "
                "(evicted, or deleted outside the sidecar)"
            )
        else:
            reason = GONE_REASON
            message = f"no remote pod for this pod in {remote_location}: deleted or never created"
        result["JID"] = ""
        for list_name, _ in lists:
            result[list_name] = [
                _gone(n, message, stamp, reason) for n in _spec_names(local, list_name)
            ]
        return result

    result["JID"] = (remote.get("metadata") or {}).get("uid", "")
    status = remote.get("status") or {}
    for list_name, status_key in lists:
        by_name = {s.get("name"): s for s in status.get(status_key) or [] if isinstance(s, dict)}
        result[list_name] = [
            _container_status(n, by_name.get(n), remote, stamp)
            for n in _spec_names(local, list_name)
        ]
    return result
