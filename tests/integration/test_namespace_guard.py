"""Closed by default, against the real control plane: a pod bound for a remote system
namespace, or for the sidecar's own namespace, is refused with 403 naming the reason,
and nothing is journalled or written remotely; insecure settings are warned at start."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from sidecar.core.naming import POD_UID_LABEL
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar
from tests.integration.plugin_client import call, create_body, new_pod, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

OWN_NAMESPACE = "interlink-plugin-home"


def remote_objects(cluster: LocalCluster, uid: str) -> list[str]:
    """Every remote object labelled with the pod's uid, in any namespace."""
    found = []
    for resource in ("pods", "configmaps", "secrets", "persistentvolumeclaims"):
        listed = cluster.request("GET", f"/api/v1/{resource}?labelSelector={POD_UID_LABEL}={uid}")
        found += [f"{resource} {o['metadata']['namespace']}" for o in listed["items"]]
    return found


def journalled(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "pending-deletes.json"
    if not path.exists():
        return {}
    entries: dict[str, Any] = json.loads(path.read_text())["pending"]
    return entries


async def assert_refused(
    sidecar: SidecarProcess,
    cluster: LocalCluster,
    state_dir: Path,
    namespace: str,
    reason: str,
) -> dict[str, Any]:
    pod = new_pod("c", namespace=namespace)
    uid = pod["metadata"]["uid"]
    code, answer = await call(sidecar, "POST", "/create", create_body(pod))
    assert code == 403, answer
    message = answer.decode()
    assert message.count("\n") == 1, "one line: interLink copies it into the pod's status"
    assert reason in message, message
    assert remote_objects(cluster, uid) == []
    assert uid not in journalled(state_dir)
    return pod


async def test_a_pod_for_kube_system_is_refused_with_and_without_the_prefix(
    start_sidecar: StartSidecar, control_plane: LocalCluster, tmp_path: Path
) -> None:
    refused = "remote namespace 'kube-system' is refused: it matches 'kube-system' in "
    refused += "offloading.namespace_deny"
    # With the prefix (the fixture's "offloading"), but kube-system excluded from it.
    excluded_state = tmp_path / "excluded-state"
    excluded = start_sidecar(
        state_dir=excluded_state,
        env={"OFFLOADING_NAMESPACE_PREFIX_EXCLUSIONS": '["kube-system"]'},
    )
    await assert_refused(excluded, control_plane, excluded_state, "kube-system", refused)

    # Without a prefix (upstream's default): local namespace = remote namespace.
    plain_state = tmp_path / "plain-state"
    plain = start_sidecar(
        state_dir=plain_state,
        env={"OFFLOADING_NAMESPACE_PREFIX": "", "POD_NAMESPACE": OWN_NAMESPACE},
    )
    pod = await assert_refused(plain, control_plane, plain_state, "kube-system", refused)
    # The sidecar's own namespace: refused, and not created remotely.
    own = f"remote namespace '{OWN_NAMESPACE}' is refused: it is the sidecar's own namespace"
    await assert_refused(plain, control_plane, plain_state, OWN_NAMESPACE, own)
    with pytest.raises(urllib.error.HTTPError) as caught:
        control_plane.request("GET", f"/api/v1/namespaces/{OWN_NAMESPACE}")
    assert caught.value.code == 404

    # /delete of a refused pod: 200 as always (interLink never retries a delete); it
    # touches only objects carrying the pod's uid label, and there are none.
    code, answer = await call(plain, "POST", "/delete", pod)
    assert code == 200, answer
    assert remote_objects(control_plane, pod["metadata"]["uid"]) == []

    # The same sidecar offloads a pod of an admitted namespace, unprefixed.
    admitted = new_pod("c", namespace="default")
    uid = admitted["metadata"]["uid"]
    code, answer = await call(plain, "POST", "/create", create_body(admitted))
    assert code == 200, answer
    assert remote_objects(control_plane, uid) == ["pods default"]
    code, answer = await call(plain, "POST", "/delete", admitted)
    assert code == 200, answer

    async def left() -> list[str]:
        return remote_objects(control_plane, uid)

    await poll("the admitted pod's remote objects to be deleted", left, lambda found: not found)


async def test_insecure_settings_are_warned_at_start(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar(
        env={"APP_OPS_ADDRESS": "0.0.0.0", "OFFLOADING_NAMESPACE_DENY": '["kube-system"]'}
    )

    async def warned() -> list[str]:
        return [line for line in sidecar.log().splitlines() if "insecure setting:" in line]

    # Logged once everything listens, so possibly just after /readyz first answers.
    warnings = await poll("the start-up warnings", warned, lambda lines: len(lines) >= 2)
    assert len(warnings) == 2, sidecar.log()
    assert all(" WARNING " in line for line in warnings)
    assert "app.ops_address: the ops server listens on 0.0.0.0" in warnings[0]
    assert "admit kube-public, kube-node-lease" in warnings[1]
