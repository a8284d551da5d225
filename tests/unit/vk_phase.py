"""A pure-Python port of how interLink's virtual kubelet (VK) turns a ``/status`` answer
into the local pod's phase, so unit tests can assert what an answer *does*.

Ported from interLink 0.6.2, pkg/virtualkubelet:

* ``VkPod.create``: ``CreatePod`` (virtualkubelet.go ~1823-1900) and
  ``setPodInitialStatus``/``PodPhase``: phase Pending, one ``waiting`` "Remote pod
  submitted" status per spec container (local-only ones included), no init statuses;
* ``handle_init_containers``: ``handleInitContainersUpdate`` (execute.go ~1351-1406);
* ``handle_containers``: ``handleContainersUpdate`` (execute.go ~1408-1475);
* ``check_pods_status``: the phase part of ``checkPodsStatus`` (execute.go ~1496-1627),
  plus ``statusLoop``'s "terminal pods are never polled again" (virtualkubelet.go ~2131).

Kept as in Go, on purpose: the merge uses index 0 for a name not seen before (the
appended entry is not the one updated), and dereferencing a nil ``Terminated`` is a
Go panic (``VkPanic`` here) that takes down the VK process.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

Status = dict[str, Any]


class VkPanic(Exception):
    """Go would panic here (nil pointer dereference): the VK process dies."""


@dataclass
class VkPod:
    phase: str = "Pending"
    reason: str = ""
    container_statuses: list[Status] = field(default_factory=list)
    init_container_statuses: list[Status] = field(default_factory=list)
    polls: int = 0

    @classmethod
    def create(cls, spec_containers: list[str]) -> VkPod:
        """``CreatePod``: every spec container (offloaded or not) starts ``waiting``."""
        waiting = {"reason": "Remote pod submitted"}
        return cls(
            container_statuses=[
                {"name": n, "state": {"waiting": dict(waiting)}} for n in spec_containers
            ]
        )

    @property
    def terminal(self) -> bool:
        return self.phase in ("Failed", "Succeeded")


def _terminated(entry: Status) -> Status:
    """``entry.State.Terminated``, a Go pointer: nil is a panic when written through."""
    terminated: Status | None = entry["state"].get("terminated")
    if terminated is None:
        raise VkPanic(f"nil State.Terminated on container {entry['name']!r}")
    return terminated


def _merge(statuses: list[Status], remote: Status) -> int:
    """The name lookup and merge shared by both handlers (index stays 0 when not found)."""
    index = 0
    found = False
    for i, checked in enumerate(statuses):
        if checked["name"] == remote["name"]:
            found, index = True, i
            break
    if not found:
        statuses.append(copy.deepcopy(remote))
    else:
        statuses[index] = copy.deepcopy(remote)
    return index


def _error_reason(code: int) -> str:
    return f"Error: {code}"


def handle_init_containers(
    answer: Status, pod: VkPod, n_init: int
) -> tuple[bool, bool, bool, str, int]:
    """``handleInitContainersUpdate``: (waiting, init running, errored, reason, terminated)."""
    terminated_count = 0
    errored = False
    failed_reason = ""
    waiting = False
    init = False
    for remote in answer.get("initContainers") or []:
        index = _merge(pod.init_container_statuses, remote)
        state = remote["state"]
        target = pod.init_container_statuses[index]
        # Go's switch: Terminated, then Waiting, then Running.
        if state.get("terminated") is not None:
            terminated_count += 1
            code = state["terminated"].get("exitCode", 0)
            _terminated(target)["exitCode"] = code
            _terminated(target)["reason"] = "Completed"
            if code != 0:
                errored = True
                failed_reason = _error_reason(code)
                _terminated(target)["reason"] = failed_reason
        elif state.get("waiting") is not None:
            waiting = True
            target["state"]["waiting"] = state["waiting"]
        elif state.get("running") is not None:
            init = True
            target["state"]["running"] = state["running"]
            target["state"].pop("waiting", None)
    if terminated_count == n_init:
        waiting = False
    return waiting, init, errored, failed_reason, terminated_count


def handle_containers(
    answer: Status, pod: VkPod, waiting_for_init: bool, init: bool, n_init: int, n_init_done: int
) -> tuple[int, bool, str, bool]:
    """``handleContainersUpdate``: (terminated count, errored, reason, running)."""
    terminated_count = 0
    errored = False
    failed_reason = ""
    running = False
    for remote in answer.get("containers") or []:
        index = _merge(pod.container_statuses, remote)
        target = pod.container_statuses[index]
        state = remote["state"]
        if waiting_for_init or init:
            reason = f"Init:{n_init_done}/{n_init}" if init else "PodInitializing"
            target["state"] = {"waiting": {"reason": reason}}
            continue
        if state.get("terminated") is not None:
            terminated_count += 1
            _terminated(target)["reason"] = "Completed"
            code = state["terminated"].get("exitCode", 0)
            if code != 0:
                errored = True
                failed_reason = _error_reason(code)
                _terminated(target)["reason"] = failed_reason
        elif state.get("waiting") is not None:
            pass
        elif state.get("running") is not None:
            running = True
            pod.phase = "Ready"  # v1.PodPhase(v1.PodReady), fixed up by the caller
            target["ready"] = True
            target["state"]["running"] = state["running"]
    return terminated_count, errored, failed_reason, running


def check_pods_status(answer: Status, pod: VkPod) -> VkPod:
    """Apply one ``/status`` answer (one ``PodStatus``) to ``pod``, as ``checkPodsStatus``."""
    if pod.terminal:
        return pod  # statusLoop skips Failed/Succeeded pods: never polled again
    pod.polls += 1
    n_containers = len(answer.get("containers") or [])
    n_init = len(answer.get("initContainers") or [])
    waiting = init = init_errored = False
    init_reason = ""
    n_init_done = 0
    if n_init > 0:
        waiting, init, init_errored, init_reason, n_init_done = handle_init_containers(
            answer, pod, n_init
        )
    n_done, errored, reason, running = handle_containers(
        answer, pod, waiting, init, n_init, n_init_done
    )
    if n_done == n_containers:  # the count is of *our* list: an empty one is "complete"
        if errored or init_errored:
            pod.phase = "Failed"
            pod.reason = reason if errored else init_reason
            for entry in pod.container_statuses:  # local-only containers included
                _terminated(entry)["reason"] = pod.reason
        else:
            pod.phase = "Succeeded"
            pod.reason = "Completed"
        return pod
    if init:
        pod.phase, pod.reason = "Pending", "Init"
    if waiting:
        pod.phase, pod.reason = "Pending", "Waiting for init containers"
    if running and pod.phase != "Running":
        pod.phase, pod.reason = "Running", "Running"
    return pod


def phase_after(answers: list[Status], spec_containers: list[str]) -> VkPod:
    """The local pod after the VK has applied ``answers`` in turn to a fresh pod."""
    pod = VkPod.create(spec_containers)
    for answer in answers:
        pod = check_pods_status(copy.deepcopy(answer), pod)
    return pod
