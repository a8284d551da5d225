"""Assertions the end-to-end tests share: a LOCAL pod reaching a state (seen with
kubectl), and the REMOTE holding nothing of ours. Each polls with a deadline and fails
with the last state seen and the chain's logs.

A pod that ends (Failed/Succeeded) while a test waits for Running fails at once: the
virtual kubelet never polls a terminal pod again, so waiting longer cannot help.
"""

from __future__ import annotations

from typing import Any

from tests.e2e import remote
from tests.e2e.chain.topology import Chain
from tests.e2e.deadlines import wait_for
from tests.e2e.kubectl import Kubectl, Pod

CLEANUP_SECONDS = 90.0
RUNNING_SECONDS = 90.0
TERMINAL = ("Failed", "Succeeded")


def assert_remote_clean(chain: Chain, timeout: float = CLEANUP_SECONDS) -> None:
    """Poll until REMOTE holds nothing of ours; fail listing what is left."""
    wait_for(
        "REMOTE to hold nothing labelled interlink.io=offloading",
        lambda: remote.leftovers(chain.remote),
        lambda left: not left,
        timeout=timeout,
        context=chain.diagnostics,
    )


def status(pod: Pod | None) -> dict[str, Any]:
    return dict((pod or {}).get("status") or {})


def state_of(container: dict[str, Any]) -> str:
    """'running', 'waiting' or 'terminated' ('' when the status has no state)."""
    return next(iter(container.get("state") or {}), "")


def _running(pod: Pod | None) -> bool:
    if pod is None:
        return False
    current = status(pod)
    if current.get("phase") in TERMINAL:
        raise AssertionError(
            f"pod {pod['metadata']['name']} ended ({current.get('phase')}) instead of "
            f"running: {current}"
        )
    statuses = current.get("containerStatuses") or []
    return (
        current.get("phase") == "Running"
        and bool(statuses)
        and all(state_of(c) == "running" for c in statuses)
    )


def running_pod(kubectl: Kubectl, name: str, *, timeout: float = RUNNING_SECONDS) -> Pod:
    """Wait until the LOCAL pod is Running with every container running; return it."""
    pod = kubectl.wait_pod(name, "Running with every container running", _running, timeout=timeout)
    assert pod is not None
    return pod


def ended_pod(kubectl: Kubectl, name: str, *, timeout: float = RUNNING_SECONDS) -> Pod:
    """Wait until the LOCAL pod's phase is Failed or Succeeded; return it."""
    pod = kubectl.wait_pod(
        name, "Failed or Succeeded", lambda p: status(p).get("phase") in TERMINAL, timeout=timeout
    )
    assert pod is not None
    return pod


def gone_pod(kubectl: Kubectl, name: str, *, timeout: float = CLEANUP_SECONDS) -> None:
    """Wait until the LOCAL pod ``name`` no longer exists."""
    kubectl.wait_pod(name, "gone", lambda pod: pod is None, timeout=timeout)
