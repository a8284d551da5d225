"""The status rules that exist for interLink's virtual kubelet, checked through it.

Each rule in ``sidecar/status/mapping.py`` answers something a kubelet would not say,
because the virtual kubelet's phase logic (execute.go) would otherwise leave the local
pod stuck, fail it, or crash. Unit tests check the answers against a port of that logic;
these check what the real virtual kubelet makes of them, seen with kubectl on LOCAL.
kwok stages script the remote side (``tests/localcluster/kwok-stages.yaml``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e import manifests
from tests.e2e.chain.topology import Chain
from tests.e2e.checks import ended_pod, running_pod, state_of, status
from tests.e2e.kubectl import Kubectl, Pod
from tests.e2e.submit import Submit

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240, func_only=True)]

NODE = "vk-unix"
NATIVE_SIDECAR = "test.interlink.io/native-sidecar"
INIT_EXIT_CODE = "test.interlink.io/init-exit-code"
LOCAL_ONLY = "interlink.eu/disable-offload-containers"
CRASH = "test.interlink.io/crash"


def with_native_sidecar(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    sidecar = manifests.container(name) | {"restartPolicy": "Always"}
    manifest["spec"]["initContainers"] = [sidecar]
    return manifest


def test_a_pod_with_a_running_native_sidecar_is_running(kubectl: Kubectl, submit: Submit) -> None:
    manifest = manifests.pod(
        manifests.unique_name("native"), NODE, annotations={NATIVE_SIDECAR: "true"}
    )
    name = submit(with_native_sidecar(manifest, "proxy"))
    pod = running_pod(kubectl, name)  # not Pending "Init" for ever
    [proxy] = status(pod)["initContainerStatuses"]
    assert state_of(proxy) == "terminated" and proxy["state"]["terminated"]["exitCode"] == 0
    assert "native sidecar running remotely" in proxy["state"]["terminated"]["message"]


def test_a_job_with_a_native_sidecar_succeeds(kubectl: Kubectl, submit: Submit) -> None:
    manifest = manifests.pod(
        manifests.unique_name("native-job"),
        NODE,
        annotations={NATIVE_SIDECAR: "true", manifests.EXIT_CODE: "0"},
        restart_policy="Never",
    )
    name = submit(with_native_sidecar(manifest, "proxy"))
    pod = ended_pod(kubectl, name)
    assert status(pod)["phase"] == "Succeeded", status(pod)


def test_a_failed_init_container_fails_the_pod_with_its_exit_code(
    kubectl: Kubectl, submit: Submit
) -> None:
    name = submit(
        manifests.pod(
            manifests.unique_name("init-fail"),
            NODE,
            annotations={INIT_EXIT_CODE: "3"},
            init_containers=("setup", "migrate"),
            restart_policy="Never",
        )
    )
    pod = ended_pod(kubectl, name)  # not Pending for ever
    assert status(pod)["phase"] == "Failed"
    assert status(pod)["reason"] == "Error: 3"
    [main] = status(pod)["containerStatuses"]
    assert main["state"]["terminated"]["exitCode"] == 3
    assert "init container setup failed with exit code 3" in main["state"]["terminated"]["message"]
    assert "never ran" in main["state"]["terminated"]["message"]


def main_running(pod: Pod | None) -> bool:
    by_name = {c["name"]: c for c in status(pod).get("containerStatuses") or []}
    return status(pod).get("phase") == "Running" and state_of(by_name.get("main", {})) == "running"


@pytest.mark.parametrize(
    ("code", "phase"), [(None, "Running"), ("3", "Failed"), ("0", "Succeeded")]
)
def test_a_pod_with_a_local_only_container(
    chain: Chain, kubectl: Kubectl, submit: Submit, code: str | None, phase: str
) -> None:
    """The virtual kubelet runs ``helper`` itself (in 0.6.2: nowhere, without its tunnel
    feature); the remote pod has only ``main``. While it runs, ``helper`` is left out of
    the answers; when the pod ends, it is reported terminated too, or the virtual
    kubelet, marking the pod Failed, dereferences its missing terminated state and dies."""
    annotations = {LOCAL_ONLY: "helper"} | ({manifests.EXIT_CODE: code} if code else {})
    name = submit(
        manifests.pod(
            manifests.unique_name("local-only"),
            NODE,
            annotations=annotations,
            containers=("main", "helper"),
            restart_policy="Never",
        )
    )
    if code is None:
        pod = kubectl.wait_pod(name, "Running with main running", main_running)
    else:
        pod = ended_pod(kubectl, name)
    assert status(pod)["phase"] == phase, status(pod)
    chain.check_alive()  # every virtual kubelet still runs
    by_name = {c["name"]: c for c in status(pod)["containerStatuses"]}
    if code is not None:
        assert by_name["main"]["state"]["terminated"]["exitCode"] == int(code)
        assert "runs locally" in by_name["helper"]["state"]["terminated"]["message"]


def test_a_container_between_its_exit_and_its_restart_keeps_the_pod_running(
    kubectl: Kubectl, submit: Submit
) -> None:
    """The remote kubelet reports ``terminated`` (pod still Running) until it restarts
    the container; answered as is, that would end the local pod for good. kwok's
    ``pod-crash`` stage holds the pod in that window."""
    name = submit(manifests.pod(manifests.unique_name("crash"), NODE, annotations={CRASH: "true"}))

    def restart_pending(pod: Pod | None) -> bool:
        phase = status(pod).get("phase")
        assert phase not in ("Failed", "Succeeded"), f"the pod ended: {status(pod)}"
        return any(
            ((c.get("state") or {}).get("waiting") or {}).get("reason") == "Restarting"
            for c in status(pod).get("containerStatuses") or []
        )

    pod = kubectl.wait_pod(name, "the container waiting for its restart", restart_pending)
    # Not ended (Failed, for good, without the rule). Running if a poll saw the
    # container run in the 100 ms before kwok's crash, else still Pending.
    assert status(pod)["phase"] in ("Pending", "Running"), status(pod)
    [main] = status(pod)["containerStatuses"]
    assert main["lastState"]["terminated"]["exitCode"] == 1
    assert "restarts it" in main["state"]["waiting"]["message"]
