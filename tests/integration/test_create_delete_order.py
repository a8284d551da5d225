"""Create, status and delete of one pod in every order interLink can send them.

interLink's virtual kubelet polls ``/status`` for a pod while its ``/create`` is still
on the way or running, and sends ``/create`` and ``/delete`` from goroutines, so a
delete can come first or in the middle. Each race is forced with a real slow step: an
admission webhook on the remote cluster (``tests/fixtures/admission_gate.py``) holds the
create of one chosen object until the test releases it, so the test knows the sidecar
is inside that create.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests import podshapes
from tests.fixtures.admission_gate import AdmissionGate, Hold
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar
from tests.integration.plugin_client import call, metric_value, new_pod, poll
from tests.integration.test_offloading import namespace_exists, remote_objects
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

ARRIVAL_TIMEOUT = 30.0


def fresh_namespace() -> str:
    """A local namespace of its own: its remote namespace must be gone at the end too."""
    return f"order-{uuid.uuid4().hex[:8]}"


def with_configmaps(namespace: str) -> dict[str, Any]:
    """A pod whose create writes ConfigMaps and Secrets before the pod."""
    body = podshapes.SHAPES["shared-volumes"](str(uuid.uuid4()))
    body["pod"]["metadata"]["namespace"] = namespace
    return body


async def create_held(
    sidecar: SidecarProcess, body: dict[str, Any], held: Hold
) -> asyncio.Task[tuple[int, bytes]]:
    """Start ``/create`` of ``body``; return once the webhook holds it (the sidecar is
    inside the create); the task answers once the hold is released."""
    creating = asyncio.create_task(call(sidecar, "POST", "/create", body))
    await asyncio.to_thread(held.wait_arrived, ARRIVAL_TIMEOUT)
    return creating


async def status_of(sidecar: SidecarProcess, pod: dict[str, Any]) -> dict[str, Any]:
    code, answer = await call(sidecar, "GET", "/status", [pod])
    assert code == 200, answer
    [entry] = json.loads(answer)
    result: dict[str, Any] = entry
    return result


def states(entry: dict[str, Any]) -> dict[str, str]:
    """container name -> its one state ('waiting', 'running' or 'terminated')."""
    return {
        c["name"]: next(iter(c["state"]))
        for key in ("initContainers", "containers")
        for c in entry.get(key) or []
    }


async def nothing_left(cluster: LocalCluster, local_namespace: str, uid: str) -> None:
    """Poll until no object of pod ``uid`` and no remote namespace of ours is left."""
    remote_namespace = f"offloading-{local_namespace}"

    async def leftovers() -> list[str]:
        found = [
            f"{kind} {item['metadata']['name']}"
            for kind, items in remote_objects(cluster, remote_namespace, uid).items()
            for item in items
        ]
        if namespace_exists(cluster, remote_namespace):
            found.append(f"Namespace {remote_namespace}")
        return found

    await poll("nothing of the pod left remotely", leftovers, lambda left: not left, timeout=90)


async def test_status_while_the_create_is_held_is_waiting_then_running(
    sidecar_module: SidecarProcess, control_plane: LocalCluster, gate: AdmissionGate
) -> None:
    namespace = fresh_namespace()
    body = with_configmaps(namespace)
    pod, uid = body["pod"], body["pod"]["metadata"]["uid"]
    with gate.hold(uid, "Pod") as held:
        creating = await create_held(sidecar_module, body, held)
        # The sidecar is inside the create, its pod write held by the webhook. The
        # virtual kubelet polls now; a terminated answer would fail the pod for good.
        entry = await status_of(sidecar_module, pod)
        assert set(states(entry).values()) == {"waiting"}, entry
        waiting = entry["containers"][0]["state"]["waiting"]
        assert waiting["reason"] == "ContainerCreating"
        assert "being created" in waiting["message"]
        # Even with a JobID already (a repeated create): still in flight, still waiting.
        with_job = {**pod, "metadata": {**pod["metadata"], "annotations": {"JobID": "x"}}}
        assert set(states(await status_of(sidecar_module, with_job)).values()) == {"waiting"}
        held.release()
        code, answer = await creating
    assert code == 200, answer
    jid = json.loads(answer)["PodJID"]
    pod["metadata"].setdefault("annotations", {})["JobID"] = jid
    entry = await poll(
        "the pod running remotely",
        lambda: status_of(sidecar_module, pod),
        lambda e: {next(iter(c["state"])) for c in e["containers"]} == {"running"},
        timeout=60,
    )
    assert entry["JID"] == jid
    code, _ = await call(sidecar_module, "POST", "/delete", pod)
    assert code == 200
    await nothing_left(control_plane, namespace, uid)


async def test_a_pod_whose_create_has_not_arrived_is_waiting_not_gone(
    sidecar_module: SidecarProcess,
) -> None:
    pod = new_pod("main")
    entry = await status_of(sidecar_module, pod)
    assert states(entry) == {"main": "waiting"}
    assert entry["containers"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    # With a JobID, its create succeeded once: no remote pod now means it is gone.
    pod["metadata"]["annotations"] = {"JobID": str(uuid.uuid4())}
    entry = await status_of(sidecar_module, pod)
    terminated = entry["containers"][0]["state"]["terminated"]
    assert terminated["exitCode"] != 0 and terminated["reason"] == "RemotePodNotFound"


async def test_a_delete_during_the_create_stops_it_and_leaves_nothing(
    sidecar_module: SidecarProcess, control_plane: LocalCluster, gate: AdmissionGate
) -> None:
    namespace = fresh_namespace()
    body = with_configmaps(namespace)
    pod, uid = body["pod"], body["pod"]["metadata"]["uid"]
    with gate.hold(uid, "ConfigMap") as held:
        creating = await create_held(sidecar_module, body, held)
        # The create is blocked writing its first ConfigMap: the delete overtakes it,
        # and is answered at once (not after the create).
        code, answer = await asyncio.wait_for(
            call(sidecar_module, "POST", "/delete", pod), timeout=10
        )
        assert code == 200, answer
        held.release()
        code, answer = await creating
    assert code == 409, answer
    assert b"was deleted" in answer
    await nothing_left(control_plane, namespace, uid)
    # The create stopped before the pod (its data objects are written together, so the
    # others went out alongside the held one; the janitor removed them).
    admitted = gate.kinds_admitted(uid)
    assert "Pod" not in admitted
    # A repeated create of the deleted pod is refused too, and writes nothing.
    code, _ = await call(sidecar_module, "POST", "/create", body)
    assert code == 409
    assert gate.kinds_admitted(uid) == admitted


async def test_a_delete_during_the_pod_write_removes_the_pod_after_it(
    sidecar_module: SidecarProcess, control_plane: LocalCluster, gate: AdmissionGate
) -> None:
    namespace = fresh_namespace()
    body = with_configmaps(namespace)
    pod, uid = body["pod"], body["pod"]["metadata"]["uid"]
    with gate.hold(uid, "Pod") as held:
        creating = await create_held(sidecar_module, body, held)
        code, _ = await call(sidecar_module, "POST", "/delete", pod)
        assert code == 200
        held.release()  # the pod is written after all ...
        code, answer = await creating
    assert code == 409, answer
    assert gate.kinds_admitted(uid).count("Pod") == 1
    await nothing_left(control_plane, namespace, uid)  # ... and then removed
    entry = await status_of(sidecar_module, pod)
    assert set(states(entry).values()) == {"terminated"}


async def test_a_delete_before_the_create_means_the_create_writes_nothing(
    start_sidecar: StartSidecar, control_plane: LocalCluster, gate: AdmissionGate, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    sidecar = start_sidecar(state_dir=state_dir)
    namespace = fresh_namespace()
    body = with_configmaps(namespace)
    pod, uid = body["pod"], body["pod"]["metadata"]["uid"]
    code, answer = await call(sidecar, "POST", "/delete", pod)
    assert code == 200, answer
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 409, answer
    assert f"uid {uid}) was deleted" in answer.decode()
    assert metric_value(sidecar, 'sidecar_offload_creates_total{outcome="deleted_first"}') == 1
    assert gate.kinds_admitted(uid) == []
    assert not namespace_exists(control_plane, f"offloading-{namespace}")
    # The tombstone is in the journal: a late create after a restart is refused as well.
    assert sidecar.stop() == 0
    restarted = start_sidecar(state_dir=state_dir)
    code, answer = await call(restarted, "POST", "/create", body, via_unix=True)
    assert code == 409, answer
    assert gate.kinds_admitted(uid) == []
    entry = await status_of(restarted, pod)
    assert set(states(entry).values()) == {"terminated"}
    assert entry["containers"][0]["state"]["terminated"]["reason"] == "RemotePodDeleted"
