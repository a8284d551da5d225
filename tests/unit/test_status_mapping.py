"""Status mapping: never silence, never an empty containers list, zoned timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sidecar.api.wire import PodRef
from sidecar.status import mapping

UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
REF = PodRef(uid=UID, name="p", namespace="default")
NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def local(*names: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": UID},
        "spec": {
            "containers": [{"name": n} for n in names],
            "initContainers": [{"name": n} for n in init],
        },
    }


def remote(**status: Any) -> dict[str, Any]:
    return {"metadata": {"uid": "remote-uid"}, "status": status}


def status_of(local_pod: dict[str, Any], remote_pod: dict[str, Any] | None) -> dict[str, Any]:
    return mapping.pod_status(local_pod, REF, remote_pod, remote_location="ns x", now=NOW)


def test_running_containers_pass_through_in_spec_order() -> None:
    answer = status_of(
        local("a", "b"),
        remote(
            phase="Running",
            containerStatuses=[
                {
                    "name": "b",
                    "state": {"running": {"startedAt": "2026-11-21T11:00:00Z"}},
                    "ready": True,
                    "restartCount": 2,
                    "image": "img",
                    "imageID": "id",
                    "containerID": "c",
                },
                {
                    "name": "a",
                    "state": {"running": {"startedAt": "2026-11-21T11:00:01+00:00"}},
                    "lastState": {
                        "terminated": {"exitCode": 1, "finishedAt": "2026-11-21T10:59:00"}
                    },
                },
            ],
        ),
    )
    assert answer["JID"] == "remote-uid"
    assert [c["name"] for c in answer["containers"]] == ["a", "b"]
    a, b = answer["containers"]
    assert a["state"]["running"]["startedAt"] == "2026-11-21T11:00:01Z"
    assert a["lastState"]["terminated"]["finishedAt"] == "2026-11-21T10:59:00Z"
    assert b["restartCount"] == 2 and b["ready"] is True and b["containerID"] == "c"


def test_unschedulable_pod_gets_waiting_states_with_the_reason() -> None:
    answer = status_of(
        local("a", "b"),
        remote(
            phase="Pending",
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available: 2 Insufficient cpu.",
                }
            ],
        ),
    )
    assert len(answer["containers"]) == 2
    for container in answer["containers"]:
        waiting = container["state"]["waiting"]
        assert waiting["reason"] == "Unschedulable"
        assert "Insufficient cpu" in waiting["message"]


def test_vanished_pod_is_terminated_with_a_reason() -> None:
    answer = status_of(local("a", init=("setup",)), None)
    for entry in answer["containers"] + answer["initContainers"]:
        terminated = entry["state"]["terminated"]
        assert terminated["exitCode"] != 0
        assert terminated["reason"] == mapping.GONE_REASON
        assert terminated["finishedAt"] == "2026-11-21T12:00:00Z"
    assert [c["name"] for c in answer["initContainers"]] == ["setup"]


def test_failed_pod_without_container_statuses_is_terminated() -> None:
    answer = status_of(local("a"), remote(phase="Failed", reason="Evicted", message="low memory"))
    terminated = answer["containers"][0]["state"]["terminated"]
    assert terminated["exitCode"] != 0 and terminated["reason"] == "Evicted"


def test_empty_state_is_replaced_by_a_waiting_state() -> None:
    answer = status_of(
        local("a"), remote(phase="Pending", containerStatuses=[{"name": "a", "state": {}}])
    )
    assert "waiting" in answer["containers"][0]["state"]
