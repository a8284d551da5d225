"""The annotation-driven kwok stages that script a remote pod's life
(tests/localcluster/kwok-stages.yaml), checked on the REMOTE cluster itself: a pod
created directly on a kwok node must reach exactly the status a real kubelet would show,
since the sidecar's and the end-to-end tests rely on it.

- ``test.interlink.io/init-exit-code: "<n>"``: the first init container fails with n.
- ``test.interlink.io/native-sidecar: "true"``: init containers run as native sidecars.
- ``test.interlink.io/crash: "true"``: the running containers exit with 1, the pod stays
  Running (a kubelet between a container's exit and its restart).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

Pod = dict[str, Any]


def state_of(container: dict[str, Any]) -> str:
    return next(iter(container.get("state") or {}), "")


def conditions(pod: Pod) -> dict[str, str]:
    return {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}


@pytest.fixture
def make_pod(control_plane: LocalCluster) -> Iterator[Callable[..., str]]:
    """Create pods bound to a kwok node; delete them at the end."""
    names: list[str] = []

    def make(
        annotations: dict[str, str], inits: tuple[str, ...], containers: tuple[str, ...]
    ) -> str:
        name = f"stage-{uuid.uuid4().hex[:8]}"
        spec = {
            "nodeName": control_plane.node_names[0],
            "restartPolicy": "Never",
            "initContainers": [{"name": n, "image": "busybox:1.36"} for n in inits],
            "containers": [{"name": n, "image": "busybox:1.36"} for n in containers],
        }
        control_plane.request(
            "POST",
            "/api/v1/namespaces/default/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "annotations": annotations},
                "spec": spec,
            },
        )
        names.append(name)
        return name

    yield make
    for name in names:
        control_plane.request(
            "DELETE", f"/api/v1/namespaces/default/pods/{name}", {"gracePeriodSeconds": 0}
        )


def wait_pod(
    cluster: LocalCluster, name: str, what: str, done: Callable[[Pod], bool], timeout: float = 60
) -> Pod:
    deadline = time.monotonic() + timeout
    while True:
        pod: Pod = cluster.request("GET", f"/api/v1/namespaces/default/pods/{name}")
        if done(pod):
            return pod
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last status: {pod.get('status')}")
        time.sleep(0.2)  # polling a condition with a deadline


def test_init_exit_code_fails_the_first_init_container(
    control_plane: LocalCluster, make_pod: Callable[..., str]
) -> None:
    name = make_pod(
        {"test.interlink.io/init-exit-code": "7"}, ("first", "second"), ("main", "side")
    )
    pod = wait_pod(
        control_plane, name, "phase Failed", lambda p: p["status"].get("phase") == "Failed"
    )
    first, second = pod["status"]["initContainerStatuses"]
    assert (first["name"], second["name"]) == ("first", "second")
    assert state_of(first) == "terminated"
    assert first["state"]["terminated"]["exitCode"] == 7
    assert first["state"]["terminated"]["reason"] == "Error"
    assert second["state"] == {"waiting": {"reason": "PodInitializing"}}
    regular = pod["status"]["containerStatuses"]
    assert [c["name"] for c in regular] == ["main", "side"]
    assert all(c["state"] == {"waiting": {"reason": "PodInitializing"}} for c in regular), regular
    assert conditions(pod)["Initialized"] == "False"
    assert conditions(pod)["Ready"] == "False"


def test_native_sidecar_keeps_init_containers_running(
    control_plane: LocalCluster, make_pod: Callable[..., str]
) -> None:
    name = make_pod({"test.interlink.io/native-sidecar": "true"}, ("proxy", "agent"), ("main",))
    pod = wait_pod(
        control_plane, name, "phase Running", lambda p: p["status"].get("phase") == "Running"
    )
    inits = pod["status"]["initContainerStatuses"]
    assert [c["name"] for c in inits] == ["proxy", "agent"]
    for init in inits:
        assert state_of(init) == "running", init
        assert init["started"] is True
        assert init["ready"] is True
    [main] = pod["status"]["containerStatuses"]
    assert state_of(main) == "running"
    assert main["ready"] is True
    assert conditions(pod)["Initialized"] == "True"
    assert conditions(pod)["Ready"] == "True"


def test_plain_init_containers_still_complete(
    control_plane: LocalCluster, make_pod: Callable[..., str]
) -> None:
    """The two stages above must not change pods without their annotations."""
    name = make_pod({}, ("setup",), ("main",))
    pod = wait_pod(
        control_plane, name, "phase Running", lambda p: p["status"].get("phase") == "Running"
    )
    [setup] = pod["status"]["initContainerStatuses"]
    assert state_of(setup) == "terminated"
    assert setup["state"]["terminated"]["exitCode"] == 0
    assert state_of(pod["status"]["containerStatuses"][0]) == "running"


def test_crash_leaves_the_containers_exited_and_the_pod_running(
    control_plane: LocalCluster, make_pod: Callable[..., str]
) -> None:
    name = make_pod({"test.interlink.io/crash": "true"}, (), ("main",))
    pod = wait_pod(
        control_plane,
        name,
        "the container exited",
        lambda p: any(
            state_of(c) == "terminated" for c in p["status"].get("containerStatuses") or []
        ),
    )
    [main] = pod["status"]["containerStatuses"]
    assert main["state"]["terminated"]["exitCode"] == 1
    assert pod["status"]["phase"] == "Running"
