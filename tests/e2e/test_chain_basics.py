"""What a user sees with kubectl on LOCAL when pods go through the real interLink chain to
the sidecar and the REMOTE cluster: Running, deletion leaving nothing behind, exit codes,
restarts, init containers. Each test runs through both virtual nodes (interLink reaching
the sidecar over TCP and over its unix socket)."""

from __future__ import annotations

import pytest

from tests.e2e import manifests, remote
from tests.e2e.chain.topology import NODES, Chain
from tests.e2e.checks import (
    assert_remote_clean,
    ended_pod,
    running_pod,
    state_of,
    status,
)
from tests.e2e.deadlines import wait_for
from tests.e2e.kubectl import Kubectl
from tests.e2e.submit import Submit

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240, func_only=True)]

BURST = [node for _ in range(10) for node in NODES]


def test_a_pod_runs_and_its_delete_leaves_nothing_remote(
    chain: Chain, kubectl: Kubectl, submit: Submit, node: str
) -> None:
    name = submit(manifests.pod(manifests.unique_name("plain"), node))
    pod = running_pod(kubectl, name)
    assert pod["spec"]["nodeName"] == node
    [main] = status(pod)["containerStatuses"]
    assert main["name"] == "main"
    assert main["ready"] is True
    uid = pod["metadata"]["uid"]
    assert len(remote.remote_pods(chain.remote, uid)) == 1, "one remote pod for the local pod"

    kubectl.delete_pod(name)  # kubectl waits until the object is gone
    assert kubectl.get_pod(name) is None
    assert_remote_clean(chain)


@pytest.mark.parametrize(
    ("code", "phase", "reason"), [(0, "Succeeded", "Completed"), (3, "Failed", "Error: 3")]
)
def test_a_container_exit_code_reaches_the_local_pod(
    kubectl: Kubectl, submit: Submit, node: str, code: int, phase: str, reason: str
) -> None:
    """The reason is the virtual kubelet's wording (execute.go: "Completed", or "Error: <code>")."""
    name = submit(
        manifests.pod(
            manifests.unique_name(f"exit{code}"),
            node,
            annotations={manifests.EXIT_CODE: str(code)},
            restart_policy="Never",
        )
    )
    pod = ended_pod(kubectl, name)
    assert status(pod)["phase"] == phase, status(pod)
    [main] = status(pod)["containerStatuses"]
    assert state_of(main) == "terminated", main
    assert main["state"]["terminated"]["exitCode"] == code
    assert main["state"]["terminated"]["reason"] == reason


def test_a_burst_of_pods_all_run_and_all_go(chain: Chain, kubectl: Kubectl, submit: Submit) -> None:
    """20 pods in one apply, spread over both nodes: creates and status polls overlap,
    and none may end (a pod answered as terminated while its create is still in flight
    turns Failed for good)."""
    names = submit.many(
        [manifests.pod(manifests.unique_name(f"burst{i}"), node) for i, node in enumerate(BURST)]
    )
    for name in names:
        running_pod(kubectl, name)
    kubectl.run("delete", "pod", *names, "--wait=false")
    wait_for(
        "every pod of the burst to be gone from LOCAL",
        lambda: kubectl.existing(names),
        lambda left: not left,
        timeout=120,
        context=chain.diagnostics,
    )
    assert_remote_clean(chain)


def test_a_container_restart_shows_in_restart_count_and_last_state(
    kubectl: Kubectl, submit: Submit, node: str
) -> None:
    name = submit(
        manifests.pod(
            manifests.unique_name("restart"), node, annotations={manifests.RESTART: "true"}
        )
    )
    pod = kubectl.wait_pod(
        name,
        "restartCount 1",
        lambda p: any(c.get("restartCount") == 1 for c in status(p).get("containerStatuses") or []),
    )
    [main] = status(pod)["containerStatuses"]
    assert state_of(main) == "running", main
    assert main["lastState"]["terminated"]["exitCode"] == 1
    assert status(pod)["phase"] == "Running"


def test_init_containers_complete_then_the_pod_runs(
    kubectl: Kubectl, submit: Submit, node: str
) -> None:
    name = submit(
        manifests.pod(manifests.unique_name("init"), node, init_containers=("setup-a", "setup-b"))
    )
    pod = running_pod(kubectl, name)
    inits = status(pod).get("initContainerStatuses") or []
    assert [c["name"] for c in inits] == ["setup-a", "setup-b"]
    for init in inits:
        assert state_of(init) == "terminated", init
        assert init["state"]["terminated"]["exitCode"] == 0
    # interLink 0.6.2's virtual kubelet sets only the Ready condition (no Initialized).
    conditions = {c["type"]: c["status"] for c in status(pod).get("conditions") or []}
    assert conditions.get("Ready") == "True", conditions
