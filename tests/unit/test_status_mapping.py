"""Status mapping: what each answer says, and what interLink's virtual kubelet (VK) makes
of it (``tests/unit/vk_phase.py`` ports its phase logic from execute.go)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.core.pods import PodRef
from sidecar.core.shape import WireError
from sidecar.status import mapping
from sidecar.status.mapping import Absence, AbsenceKind
from tests.unit.vk_phase import VkPod, phase_after

UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
REF = PodRef(uid=UID, name="p", namespace="default")
NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
STARTED = "2026-11-21T11:00:00Z"
_STATES = ("waiting", "running", "terminated")


def local(
    *names: str,
    init: tuple[str, ...] = (),
    sidecars: tuple[str, ...] = (),
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A local pod; ``sidecars`` are init containers with ``restartPolicy: Always``."""
    init_specs: list[dict[str, Any]] = [
        {"name": n, "restartPolicy": "Always"} if n in sidecars else {"name": n} for n in init
    ]
    return {
        "metadata": {
            "name": "p",
            "namespace": "default",
            "uid": UID,
            "annotations": annotations or {},
        },
        "spec": {"containers": [{"name": n} for n in names], "initContainers": init_specs},
    }


def remote(**status: Any) -> dict[str, Any]:
    return {"metadata": {"uid": "remote-uid"}, "status": status}


def running(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "state": {"running": {"startedAt": STARTED}}, **extra}


def waiting(name: str, reason: str = "PodInitializing", **extra: Any) -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason}}, **extra}


def terminated(name: str, code: int, **extra: Any) -> dict[str, Any]:
    state = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": "2026-11-21T11:00:00+00:00",
        "finishedAt": "2026-11-21T11:30:00",
    }
    return {"name": name, "state": {"terminated": state}, **extra}


def status_of(
    local_pod: dict[str, Any], remote_pod: dict[str, Any] | None, absence: Absence | None = None
) -> dict[str, Any]:
    answer = mapping.pod_status(
        local_pod, REF, remote_pod, remote_location="ns x", absence=absence, now=NOW
    )
    assert_shape(answer)
    return answer


def assert_shape(answer: dict[str, Any]) -> None:
    """What the VK needs to decode and use an answer (interlink-plugin-api.md §5.2)."""
    assert answer["name"] and answer["UID"] == UID and answer["namespace"]
    assert isinstance(answer["JID"], str)
    for entry in answer["containers"] + answer["initContainers"]:
        assert entry["name"]
        kinds = [k for k in _STATES if entry["state"].get(k) is not None]
        assert len(kinds) == 1, f"{entry['name']}: exactly one state, got {entry['state']}"
        for state in [entry["state"], entry.get("lastState") or {}]:
            for detail in state.values():
                for key in ("startedAt", "finishedAt"):
                    assert detail.get(key) is None or detail[key].endswith("Z"), detail
        if "terminated" in entry["state"]:
            code = entry["state"]["terminated"]["exitCode"]
            assert isinstance(code, int) and not isinstance(code, bool)


def names(answer: dict[str, Any], key: str = "containers") -> list[str]:
    return [c["name"] for c in answer[key]]


def state_of(answer: dict[str, Any], name: str, key: str = "containers") -> dict[str, Any]:
    [entry] = [c for c in answer[key] if c["name"] == name]
    state: dict[str, Any] = entry["state"]
    return state


def vk(local_pod: dict[str, Any], *answers: dict[str, Any]) -> VkPod:
    """The local pod as the VK leaves it after these answers."""
    return phase_after(list(answers), [c["name"] for c in local_pod["spec"]["containers"]])


# --- the VK model itself: facts from execute.go the rules below rely on ----------------


def test_vk_model_an_empty_containers_list_completes_the_pod() -> None:
    answer = {"name": "p", "UID": UID, "containers": [], "initContainers": []}
    assert vk(local("a"), answer).phase == "Succeeded"


def test_vk_model_an_all_terminated_answer_is_final() -> None:
    ended = {"name": "p", "containers": [terminated("a", 1)]}
    later = {"name": "p", "containers": [running("a")]}
    pod = vk(local("a"), ended, later)
    assert (pod.phase, pod.reason, pod.polls) == ("Failed", "Error: 1", 1)


def test_vk_model_a_running_init_container_holds_the_pod_pending() -> None:
    answer = {"name": "p", "initContainers": [running("init")], "containers": [running("a")]}
    pod = vk(local("a", init=("init",)), answer)
    assert (pod.phase, pod.reason) == ("Pending", "Init")
    assert pod.container_statuses[0]["state"] == {"waiting": {"reason": "Init:0/1"}}


# --- rule 6: what always holds ---------------------------------------------------------


def test_running_containers_pass_through_in_spec_order() -> None:
    answer = status_of(
        local("a", "b"),
        remote(
            phase="Running",
            containerStatuses=[
                running(
                    "b", ready=True, restartCount=2, image="img", imageID="id", containerID="c"
                ),
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
    assert names(answer) == ["a", "b"]
    a, b = answer["containers"]
    assert a["state"]["running"]["startedAt"] == "2026-11-21T11:00:01Z"
    assert a["lastState"]["terminated"]["finishedAt"] == "2026-11-21T10:59:00Z"
    assert b["restartCount"] == 2 and b["ready"] is True and b["containerID"] == "c"
    assert vk(local("a", "b"), answer).phase == "Running"


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
        waiting_state = container["state"]["waiting"]
        assert waiting_state["reason"] == "Unschedulable"
        assert "Insufficient cpu" in waiting_state["message"]
    assert vk(local("a", "b"), answer).phase == "Pending"


def test_empty_state_is_replaced_by_a_waiting_state() -> None:
    answer = status_of(
        local("a"),
        remote(phase="Pending", containerStatuses=[{"name": "a", "state": {}, "image": "i"}]),
    )
    assert "waiting" in answer["containers"][0]["state"]
    assert answer["containers"][0]["image"] == "i"


# --- rule 5: restarts and lastState --------------------------------------------------------


def test_restarts_and_last_state_pass_through() -> None:
    last = {
        "exitCode": 137,
        "reason": "OOMKilled",
        "startedAt": "2026-11-21T10:00:00+01:00",
        "finishedAt": "2026-11-21T10:30:00Z",
        "containerID": "containerd://abc",
    }
    answer = status_of(
        local("a"),
        remote(
            phase="Running",
            containerStatuses=[running("a", restartCount=3, lastState={"terminated": last})],
        ),
    )
    [entry] = answer["containers"]
    assert entry["restartCount"] == 3
    assert entry["lastState"]["terminated"] == {
        **last,
        "startedAt": "2026-11-21T09:00:00Z",
        "finishedAt": "2026-11-21T10:30:00Z",
    }
    assert vk(local("a"), answer).phase == "Running"


# --- rule 1: no remote pod, and why ----------------------------------------------------------


def test_a_pod_being_created_is_waiting_never_terminated() -> None:
    pod = local("a", "b", init=("setup",))
    since = datetime(2026, 11, 21, 11, 59, 30, tzinfo=UTC).timestamp()
    answer = status_of(pod, None, Absence(AbsenceKind.CREATING, since))
    assert answer["JID"] == ""
    assert names(answer) == ["a", "b"] and names(answer, "initContainers") == ["setup"]
    for entry in answer["containers"] + answer["initContainers"]:
        assert entry["state"]["waiting"]["reason"] == "ContainerCreating"
        assert entry["state"]["waiting"]["message"] == (
            "the remote pod is being created in ns x since 2026-11-21T11:59:30Z"
        )
    local_pod = vk(pod, answer)
    assert local_pod.phase == "Pending", "the VK must not fail a pod whose create is running"
    assert local_pod.reason == "Waiting for init containers"


def test_a_pod_whose_create_has_not_arrived_is_waiting() -> None:
    answer = status_of(local("a"), None, Absence(AbsenceKind.NOT_ARRIVED))
    waiting_state = answer["containers"][0]["state"]["waiting"]
    assert waiting_state["reason"] == "ContainerCreating"
    assert "has not reached the sidecar yet" in waiting_state["message"]
    assert vk(local("a"), answer).phase == "Pending"


def test_creating_then_running_turns_the_local_pod_running() -> None:
    pod = local("a")
    creating = status_of(pod, None, Absence(AbsenceKind.CREATING))
    assert "since" not in creating["containers"][0]["state"]["waiting"]["message"]
    up = status_of(pod, remote(phase="Running", containerStatuses=[running("a")]))
    assert vk(pod, creating, up).phase == "Running"


def test_a_deleted_remote_pod_is_terminated_with_when() -> None:
    deleted = datetime(2026, 11, 21, 11, 58, 0, tzinfo=UTC).timestamp()
    answer = status_of(local("a"), None, Absence(AbsenceKind.DELETED, deleted))
    ended = answer["containers"][0]["state"]["terminated"]
    assert ended["exitCode"] == mapping.GONE_EXIT_CODE
    assert ended["reason"] == mapping.DELETED_REASON
    assert "deleted at 2026-11-21T11:58:00Z" in ended["message"]
    assert vk(local("a"), answer).phase == "Failed"


@pytest.mark.parametrize("absence", [None, Absence(AbsenceKind.LOST)])
def test_a_lost_pod_is_terminated_with_a_reason(absence: Absence | None) -> None:
    answer = status_of(local("a", init=("setup",)), None, absence)
    for entry in answer["containers"] + answer["initContainers"]:
        ended = entry["state"]["terminated"]
        assert ended["exitCode"] == mapping.GONE_EXIT_CODE
        assert ended["reason"] == mapping.GONE_REASON
        assert ended["finishedAt"] == "2026-11-21T12:00:00Z"
    assert names(answer, "initContainers") == ["setup"]
    assert vk(local("a", init=("setup",)), answer).phase == "Failed"


# --- rule 2: containers the VK runs locally ----------------------------------------------------

LOCAL_ONLY = {
    mapping.DISABLE_OFFLOAD_CONTAINERS: " helper , ,other-helper,",
    mapping.DISABLE_OFFLOAD_INIT_CONTAINERS: "local-init",
}


def local_only_pod() -> dict[str, Any]:
    return local(
        "helper", "main", "other-helper", init=("local-init", "setup"), annotations=LOCAL_ONLY
    )


@pytest.mark.parametrize(
    ("remote_pod", "absence"),
    [
        (None, Absence(AbsenceKind.CREATING)),
        (None, Absence(AbsenceKind.NOT_ARRIVED)),
        (remote(phase="Pending"), None),
        (remote(phase="Running", containerStatuses=[running("main")]), None),
    ],
)
def test_local_only_containers_are_not_reported_while_the_pod_runs(
    remote_pod: dict[str, Any] | None, absence: Absence | None
) -> None:
    answer = status_of(local_only_pod(), remote_pod, absence)
    assert names(answer) == ["main"]
    assert names(answer, "initContainers") == ["setup"]


@pytest.mark.parametrize(
    ("remote_pod", "absence"),
    [
        (None, Absence(AbsenceKind.DELETED, 0.0)),
        (None, None),
        (remote(phase="Failed", reason="Evicted"), None),
        (remote(phase="Succeeded", containerStatuses=[terminated("main", 0)]), None),
    ],
)
def test_local_only_containers_end_with_the_pod(
    remote_pod: dict[str, Any] | None, absence: Absence | None
) -> None:
    answer = status_of(local_only_pod(), remote_pod, absence)
    assert names(answer) == ["helper", "main", "other-helper"]
    assert names(answer, "initContainers") == ["setup"]
    for entry in answer["containers"]:
        if entry["name"] != "main":
            ended = entry["state"]["terminated"]
            assert ended["exitCode"] == 0 and ended["reason"] == mapping.LOCAL_ONLY_REASON
            assert mapping.DISABLE_OFFLOAD_CONTAINERS in ended["message"]


def test_local_only_containers_do_not_hold_the_pod() -> None:
    pod = local_only_pod()
    up = status_of(
        pod,
        remote(
            phase="Running",
            initContainerStatuses=[terminated("setup", 0)],
            containerStatuses=[running("main")],
        ),
    )
    assert vk(pod, up).phase == "Running"
    done = status_of(
        pod,
        remote(
            phase="Succeeded",
            initContainerStatuses=[terminated("setup", 0)],
            containerStatuses=[terminated("main", 0)],
        ),
    )
    assert vk(pod, up, done).phase == "Succeeded"


def test_the_annotation_is_parsed_as_the_vk_parses_it() -> None:
    pod = local("a", "b", " c", annotations={mapping.DISABLE_OFFLOAD_CONTAINERS: "  ,a,, b ,"})
    answer = status_of(pod, remote(phase="Pending"))
    # " c" is not "c": names are trimmed in the annotation, never in the spec.
    assert names(answer) == [" c"]
    assert names(status_of(local("a", annotations={"x": "a"}), None)) == ["a"]


# CreatePod gives every spec container (local-only ones too) a "waiting" status, and on
# Failed checkPodsStatus (execute.go ~1597-1601) sets State.Terminated.Reason on every
# container status: a nil pointer dereference on a local-only container that was never
# reported terminated, a panic in statusLoop that kills the VK process.
@pytest.mark.parametrize(
    ("remote_pod", "absence"),
    [
        (
            remote(
                phase="Failed",
                initContainerStatuses=[terminated("setup", 0)],
                containerStatuses=[terminated("main", 2)],
            ),
            None,
        ),
        (remote(phase="Failed", initContainerStatuses=[terminated("setup", 1)]), None),
        (None, Absence(AbsenceKind.DELETED, 0.0)),
        (None, None),
    ],
)
def test_a_failed_pod_with_a_local_only_container_does_not_crash_the_vk(
    remote_pod: dict[str, Any] | None, absence: Absence | None
) -> None:
    pod = local_only_pod()
    assert vk(pod, status_of(pod, remote_pod, absence)).phase == "Failed"


# --- rule 3: native sidecars ---------------------------------------------------------------------


def sidecar_pod() -> dict[str, Any]:
    return local("main", init=("proxy", "setup"), sidecars=("proxy",))


def test_a_native_sidecar_that_has_not_started_holds_the_pod() -> None:
    answer = status_of(
        sidecar_pod(),
        remote(
            phase="Pending",
            initContainerStatuses=[waiting("proxy", "ContainerCreating"), waiting("setup")],
            containerStatuses=[waiting("main")],
        ),
    )
    assert state_of(answer, "proxy", "initContainers")["waiting"]["reason"] == "ContainerCreating"
    pod = vk(sidecar_pod(), answer)
    assert (pod.phase, pod.reason) == ("Pending", "Waiting for init containers")


def test_a_running_native_sidecar_lets_the_pod_run() -> None:
    answer = status_of(
        sidecar_pod(),
        remote(
            phase="Running",
            conditions=[{"type": "Initialized", "status": "True"}],
            initContainerStatuses=[
                running("proxy", started=True, ready=True, image="envoy", restartCount=0),
                terminated("setup", 0),
            ],
            containerStatuses=[running("main", ready=True)],
        ),
    )
    [proxy, setup] = answer["initContainers"]
    assert proxy["state"]["terminated"]["exitCode"] == 0
    assert proxy["state"]["terminated"]["message"] == (
        f"native sidecar running remotely since {STARTED}"
    )
    assert proxy["state"]["terminated"]["startedAt"] == STARTED
    assert (proxy["ready"], proxy["image"], proxy["restartCount"]) == (True, "envoy", 0)
    assert setup["state"]["terminated"]["finishedAt"] == "2026-11-21T11:30:00Z"
    assert vk(sidecar_pod(), answer).phase == "Running"


def test_a_native_sidecar_holds_nothing_while_a_later_init_container_runs() -> None:
    answer = status_of(
        sidecar_pod(),
        remote(
            phase="Pending",
            initContainerStatuses=[running("proxy", started=True), running("setup")],
            containerStatuses=[waiting("main")],
        ),
    )
    assert "terminated" in state_of(answer, "proxy", "initContainers")
    pod = vk(sidecar_pod(), answer)
    assert (pod.phase, pod.reason) == ("Pending", "Init")
    assert pod.container_statuses[0]["state"]["waiting"]["reason"] == "Init:1/2"


@pytest.mark.parametrize(
    ("proxy", "conditions", "message"),
    [
        (
            waiting(
                "proxy",
                "CrashLoopBackOff",
                started=False,
                restartCount=2,
                lastState={"terminated": {"exitCode": 137}},
            ),
            [],
            "native sidecar started remotely, now waiting (CrashLoopBackOff); "
            "2 restarts, last exit code 137",
        ),
        (
            waiting("proxy", "ContainerCreating"),
            [{"type": "Initialized", "status": "True"}],
            "native sidecar started remotely, now waiting (ContainerCreating)",
        ),
        (
            {"name": "proxy", "state": {}, "started": True},
            [],
            "native sidecar started remotely, now waiting (ContainerCreating)",
        ),
        (
            terminated("proxy", 137, restartCount=1, lastState={"terminated": {"exitCode": 1}}),
            [],
            "native sidecar exited with code 137 (Error) at 2026-11-21T11:30:00Z, "
            "after running since 2026-11-21T11:00:00Z; 1 restart, last exit code 1",
        ),
    ],
)
def test_a_started_native_sidecar_is_terminated_with_exit_code_0_and_the_truth(
    proxy: dict[str, Any], conditions: list[dict[str, Any]], message: str
) -> None:
    answer = status_of(
        sidecar_pod(),
        remote(
            phase="Running",
            conditions=conditions,
            initContainerStatuses=[proxy, terminated("setup", 0)],
            containerStatuses=[running("main")],
        ),
    )
    ended = state_of(answer, "proxy", "initContainers")["terminated"]
    assert ended["exitCode"] == 0
    assert ended["message"] == message
    [entry] = [c for c in answer["initContainers"] if c["name"] == "proxy"]
    assert entry.get("restartCount") == proxy.get("restartCount")
    assert entry.get("lastState") == proxy.get("lastState")
    assert vk(sidecar_pod(), answer).phase == "Running", "a sidecar's exit code never fails a pod"


def test_a_pod_whose_sidecar_was_killed_at_the_end_succeeds() -> None:
    answer = status_of(
        sidecar_pod(),
        remote(
            phase="Succeeded",
            initContainerStatuses=[terminated("proxy", 143), terminated("setup", 0)],
            containerStatuses=[terminated("main", 0)],
        ),
    )
    assert state_of(answer, "proxy", "initContainers")["terminated"]["exitCode"] == 0
    assert vk(sidecar_pod(), answer).phase == "Succeeded"


def test_an_init_container_without_restart_policy_always_is_not_a_sidecar() -> None:
    answer = status_of(
        local("main", init=("setup",)),
        remote(phase="Pending", initContainerStatuses=[running("setup", started=True)]),
    )
    assert "running" in state_of(answer, "setup", "initContainers")


# --- rule 4: remote pods that have ended -------------------------------------------------------


def test_a_failed_init_container_fails_the_pod() -> None:
    pod = local("main", "other", init=("setup", "later"))
    answer = status_of(
        pod,
        remote(
            phase="Failed",
            initContainerStatuses=[terminated("setup", 3), waiting("later")],
            containerStatuses=[waiting("main"), waiting("other")],
        ),
    )
    setup = state_of(answer, "setup", "initContainers")["terminated"]
    assert (setup["exitCode"], setup["reason"]) == (3, "Error"), "real states pass through"
    assert setup["finishedAt"] == "2026-11-21T11:30:00Z"
    for key, name in [("initContainers", "later"), ("containers", "main"), ("containers", "other")]:
        ended = state_of(answer, name, key)["terminated"]
        assert ended["exitCode"] == 3
        assert ended["reason"] == mapping.INIT_FAILED_REASON
        assert (
            ended["message"]
            == "init container setup failed with exit code 3; this container never ran"
        )
        assert ended["finishedAt"] == "2026-11-21T12:00:00Z"
    local_pod = vk(pod, answer)
    assert (local_pod.phase, local_pod.reason) == ("Failed", "Error: 3")


def test_a_failed_container_stops_the_others_with_its_code() -> None:
    answer = status_of(
        local("a", "b"),
        remote(phase="Failed", containerStatuses=[terminated("a", 2), running("b")]),
    )
    b = state_of(answer, "b")["terminated"]
    assert (b["exitCode"], b["startedAt"]) == (2, STARTED)
    assert b["message"] == "container a failed with exit code 2; this container was stopped"
    assert vk(local("a", "b"), answer).phase == "Failed"


def test_a_failed_pod_without_container_statuses_is_terminated() -> None:
    answer = status_of(local("a"), remote(phase="Failed", reason="Evicted", message="low memory"))
    ended = answer["containers"][0]["state"]["terminated"]
    assert (ended["exitCode"], ended["reason"]) == (mapping.GONE_EXIT_CODE, "Evicted")
    assert (
        ended["message"] == "the remote pod failed (Evicted: low memory); this container never ran"
    )
    assert vk(local("a"), answer).phase == "Failed"


def test_a_succeeded_pod_ends_every_container_with_0() -> None:
    pod = local("a", "b", init=("setup",))
    answer = status_of(
        pod,
        remote(
            phase="Succeeded",
            initContainerStatuses=[terminated("setup", 0)],
            containerStatuses=[terminated("a", 0)],
        ),
    )
    assert state_of(answer, "b")["terminated"]["exitCode"] == 0
    assert vk(pod, answer).phase == "Succeeded"


def test_real_terminated_states_pass_through_unchanged() -> None:
    oom = {
        "exitCode": 137,
        "reason": "OOMKilled",
        "message": "memory",
        "signal": 9,
        "startedAt": "2026-11-21T10:00:00+01:00",
        "finishedAt": "2026-11-21T10:30:00Z",
        "containerID": "containerd://x",
    }
    answer = status_of(
        local("a"),
        remote(phase="Failed", containerStatuses=[{"name": "a", "state": {"terminated": oom}}]),
    )
    assert answer["containers"][0]["state"]["terminated"] == {
        **oom,
        "startedAt": "2026-11-21T09:00:00Z",
    }


# --- containers between an exit and their restart ------------------------------------------


def with_policy(pod: dict[str, Any], policy: str | None) -> dict[str, Any]:
    if policy is not None:
        pod["spec"]["restartPolicy"] = policy
    return pod


@pytest.mark.parametrize(("policy", "code"), [(None, 1), ("Always", 0), ("OnFailure", 2)])
def test_a_container_that_will_be_restarted_is_waiting_not_terminated(
    policy: str | None, code: int
) -> None:
    pod = with_policy(local("main"), policy)
    up = status_of(pod, remote(phase="Running", containerStatuses=[running("main")]))
    exited = status_of(
        pod, remote(phase="Running", containerStatuses=[terminated("main", code, restartCount=0)])
    )
    state = state_of(exited, "main")
    assert state["waiting"]["reason"] == mapping.RESTARTING_REASON
    assert f"exited with code {code}" in state["waiting"]["message"]
    [entry] = exited["containers"]
    assert entry["lastState"]["terminated"]["exitCode"] == code
    # The VK keeps the pod Running: a terminated answer here would end it for good.
    assert vk(pod, up, exited).phase == "Running"


@pytest.mark.parametrize(
    ("policy", "code", "phase"), [("Never", 1, "Failed"), ("OnFailure", 0, "Succeeded")]
)
def test_a_final_exit_stays_terminated(policy: str, code: int, phase: str) -> None:
    pod = with_policy(local("main"), policy)
    up = status_of(pod, remote(phase="Running", containerStatuses=[running("main")]))
    exited = status_of(pod, remote(phase="Running", containerStatuses=[terminated("main", code)]))
    assert state_of(exited, "main")["terminated"]["exitCode"] == code
    assert vk(pod, up, exited).phase == phase


# --- reading the local pod: the fast read is the checked one ------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "a", "Always"]),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=4,
)


def _or_json(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, _JSON)


_CONTAINER = _or_json(
    st.fixed_dictionaries(
        {},
        optional={
            "name": _or_json(st.sampled_from(["", "a", "b"])),
            "restartPolicy": _or_json(st.just("Always")),
        },
    )
)
_LOCAL_PODS = st.fixed_dictionaries(
    {},
    optional={
        "metadata": _or_json(
            st.fixed_dictionaries(
                {},
                optional={
                    "annotations": _or_json(
                        st.dictionaries(
                            st.sampled_from([mapping.DISABLE_OFFLOAD_CONTAINERS, "x"]),
                            _or_json(st.sampled_from(["a", "a, b", ""])),
                            max_size=2,
                        )
                    )
                },
            )
        ),
        "spec": _or_json(
            st.fixed_dictionaries(
                {},
                optional={
                    "initContainers": _or_json(st.lists(_CONTAINER, max_size=3)),
                    "containers": _or_json(st.lists(_CONTAINER, max_size=3)),
                    "restartPolicy": _or_json(st.sampled_from(["", "Never", "OnFailure"])),
                },
            )
        ),
    },
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LOCAL_PODS)
def test_the_fast_read_of_a_local_pod_is_the_checked_one(local_pod: dict[str, Any]) -> None:
    """``read_local`` skips building JSON paths when every field has the right type;
    what it reads must be what the checked reader reads, and a wrong type must still
    reach the checked reader (the 422 naming the field)."""
    try:
        expected: Any = mapping._read_checked(local_pod, "[0]")
    except WireError as exc:
        expected = exc.message
    if isinstance(expected, str):
        assert mapping._read_well_typed(local_pod) is None
        with pytest.raises(WireError) as raised:
            mapping.read_local(local_pod, "[0]")
        assert raised.value.message == expected
        return
    assert mapping._read_well_typed(local_pod) == expected
    assert mapping.read_local(local_pod, "[0]") == expected
