"""Create and delete against the real control plane: lossless, idempotent, nothing left."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from sidecar.core import naming
from tests import podshapes
from tests.deadlines import scaled
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar
from tests.integration.plugin_client import call, poll
from tests.localcluster import LocalCluster
from tests.poddiff import undocumented

pytestmark = pytest.mark.controlplane

PLURALS = {
    "Pod": "pods",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "PersistentVolumeClaim": "persistentvolumeclaims",
}


def remote_objects(cluster: LocalCluster, namespace: str, uid: str) -> dict[str, list[Any]]:
    """Every object labelled with pod ``uid`` in remote ``namespace``, by kind."""
    selector = f"{naming.POD_UID_LABEL}={uid}"
    found = {}
    for kind, plural in PLURALS.items():
        listing = cluster.request(
            "GET", f"/api/v1/namespaces/{namespace}/{plural}?labelSelector={selector}"
        )
        found[kind] = listing.get("items", []) if isinstance(listing, dict) else []
    return found


def namespace_exists(cluster: LocalCluster, name: str) -> bool:
    names = {n["metadata"]["name"] for n in cluster.request("GET", "/api/v1/namespaces")["items"]}
    return name in names


async def wait_all_gone(cluster: LocalCluster, namespace: str, uids: list[str]) -> None:
    async def leftovers() -> list[str]:
        return [
            f"{kind} {item['metadata']['name']}"
            for uid in uids
            for kind, items in remote_objects(cluster, namespace, uid).items()
            for item in items
        ]

    await poll(
        f"every object of {len(uids)} pod(s) to be deleted",
        leftovers,
        lambda names: not names,
        timeout=60,
    )


def locally_defaulted(cluster: LocalCluster, body: dict[str, Any]) -> dict[str, Any]:
    """The pod as a real API server stores it (server-side dry run), as the virtual
    kubelet would send it."""
    pod = dict(body["pod"])
    pod["metadata"] = {k: v for k, v in pod["metadata"].items() if k != "uid"}
    stored = cluster.request("POST", "/api/v1/namespaces/default/pods?dryRun=All", pod)
    # The ServiceAccount admission added a kube-api-access volume: send its data as
    # the virtual kubelet does, to every container that mounts it.
    sent = {
        m["metadata"]["name"] for e in body["container"] for m in e.get("projectedvolumemaps") or []
    }
    entries = {e["name"]: e for e in body["container"]}
    for volume in stored["spec"].get("volumes") or []:
        if "projected" in volume and volume["name"] not in sent:
            _, data = podshapes.kube_api_access(volume["name"])
            for c in stored["spec"].get("initContainers", []) + stored["spec"]["containers"]:
                if any(m["name"] == volume["name"] for m in c.get("volumeMounts") or []):
                    entry = entries[c["name"]]
                    entry["projectedvolumemaps"] = [*(entry.get("projectedvolumemaps") or []), data]
    return {**body, "pod": stored}


@pytest.mark.parametrize("shape", sorted(podshapes.SHAPES))
async def test_shape_is_forwarded_losslessly_and_deleted_completely(
    shape: str, sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    body = locally_defaulted(control_plane, podshapes.SHAPES[shape](str(uuid.uuid4())))
    uid = body["pod"]["metadata"]["uid"]
    code, answer = await call(sidecar_module, "POST", "/create", body)
    assert code == 200, answer
    jid = json.loads(answer)["PodJID"]

    objects = remote_objects(control_plane, "offloading-default", uid)
    [remote_pod] = objects["Pod"]
    assert remote_pod["metadata"]["uid"] == jid
    assert undocumented(body["pod"], remote_pod) == []

    sent_cms = {
        o["metadata"]["name"]: o for e in body["container"] for o in e.get("configMaps") or []
    }
    sent_secrets = {
        o["metadata"]["name"]: o for e in body["container"] for o in e.get("secrets") or []
    }
    remote_cms = {
        o["metadata"]["annotations"]["interlink.io/source.name"]: o for o in objects["ConfigMap"]
    }
    remote_secrets = {
        o["metadata"]["annotations"]["interlink.io/source.name"]: o for o in objects["Secret"]
    }
    for name, local in sent_cms.items():
        assert remote_cms[name].get("data") == local.get("data")
        assert remote_cms[name].get("binaryData") == local.get("binaryData")
    for name, local in sent_secrets.items():
        assert remote_secrets[name]["data"] == local["data"]
    for entry in body["container"]:
        for projected in entry.get("projectedvolumemaps") or []:
            stored: dict[str, str] = {}
            for obj in objects["ConfigMap"]:
                stored |= obj.get("data") or {}
            for obj in objects["Secret"]:
                stored |= {
                    k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()
                }
            for content in projected["data"].values():
                assert content in stored.values()

    code, answer = await call(sidecar_module, "POST", "/delete", body["pod"])
    assert code == 200, answer
    await wait_all_gone(control_plane, "offloading-default", [uid])


async def test_pvc_retention_policies(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    body = podshapes.pvcs(str(uuid.uuid4()), suffix=f"-{uuid.uuid4().hex[:6]}")
    claims = sorted(v["persistentVolumeClaim"]["claimName"] for v in body["pod"]["spec"]["volumes"])
    code, answer = await call(sidecar_module, "POST", "/create", body)
    assert code == 200, answer
    code, answer = await call(sidecar_module, "POST", "/delete", body["pod"])
    assert code == 200, answer
    await wait_all_gone(control_plane, "offloading-default", [body["pod"]["metadata"]["uid"]])

    def pvc_names() -> set[str]:
        items = control_plane.request(
            "GET", "/api/v1/namespaces/offloading-default/persistentvolumeclaims"
        )["items"]
        return {i["metadata"]["name"] for i in items if "deletionTimestamp" not in i["metadata"]}

    async def current() -> set[str]:
        return pvc_names() & set(claims)

    delete_claim, retain_claim = claims
    assert await poll(
        "the delete-policy PVC to go", current, lambda names: names == {retain_claim}, timeout=60
    ) == {retain_claim}
    assert delete_claim.startswith("data-delete")


async def test_repeated_create_returns_the_same_jid(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    body = podshapes.shared_volumes(str(uuid.uuid4()))
    uid = body["pod"]["metadata"]["uid"]
    first = await call(sidecar_module, "POST", "/create", body)
    second = await call(sidecar_module, "POST", "/create", body)
    assert first[0] == second[0] == 200
    assert json.loads(first[1])["PodJID"] == json.loads(second[1])["PodJID"]
    objects = remote_objects(control_plane, "offloading-default", uid)
    assert len(objects["Pod"]) == 1
    assert objects["Pod"][0]["metadata"].get("deletionTimestamp") is None
    for code, _ in [await call(sidecar_module, "POST", "/delete", body["pod"]) for _ in range(2)]:
        assert code == 200
    await wait_all_gone(control_plane, "offloading-default", [uid])


def env_ref_bodies(namespace: str, prefix: str, count: int) -> list[dict[str, Any]]:
    """``count`` env-refs pods of their own uids, named ``<prefix>-<index>``, in
    ``namespace``."""
    bodies = []
    for index in range(count):
        body = podshapes.env_refs(str(uuid.uuid4()))
        body["pod"]["metadata"] |= {"namespace": namespace, "name": f"{prefix}-{index}"}
        bodies.append(body)
    return bodies


async def test_a_namespace_deleted_behind_our_back_is_made_again(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    """The sidecar remembers the namespaces it made sure of (no read before each create);
    one deleted by someone else must not make the next create fail."""
    namespace = f"gone-{uuid.uuid4().hex[:6]}"
    remote_namespace = f"offloading-{namespace}"
    bodies = env_ref_bodies(namespace, "gone", 2)
    code, answer = await call(sidecar_module, "POST", "/create", bodies[0])
    assert code == 200, answer
    # Someone else removes the namespace (and the first pod with it).
    await asyncio.to_thread(
        control_plane.request, "DELETE", f"/api/v1/namespaces/{remote_namespace}"
    )

    async def namespace_gone() -> bool:
        try:
            await asyncio.to_thread(
                control_plane.request, "GET", f"/api/v1/namespaces/{remote_namespace}"
            )
        except urllib.error.HTTPError as exc:
            return exc.code == 404
        return False

    await poll("the namespace to be gone", namespace_gone, lambda gone: gone, timeout=90)
    code, answer = await call(sidecar_module, "POST", "/create", bodies[1])
    assert code == 200, answer
    uid = bodies[1]["pod"]["metadata"]["uid"]
    assert len(remote_objects(control_plane, remote_namespace, uid)["Pod"]) == 1
    for body in bodies:
        assert (await call(sidecar_module, "POST", "/delete", body["pod"]))[0] == 200
    await wait_all_gone(control_plane, remote_namespace, [uid])


async def test_fifty_concurrent_creates_and_deletes(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    namespace = f"burst-{uuid.uuid4().hex[:6]}"
    bodies = env_ref_bodies(namespace, "burst", 50)
    results = await asyncio.gather(*(call(sidecar_module, "POST", "/create", b) for b in bodies))
    assert [code for code, _ in results] == [200] * 50, [a for c, a in results if c != 200][:3]
    assert len({json.loads(answer)["PodJID"] for _, answer in results}) == 50

    deletes = await asyncio.gather(
        *(call(sidecar_module, "POST", "/delete", b["pod"]) for b in bodies)
    )
    assert [code for code, _ in deletes] == [200] * 50
    again = await call(sidecar_module, "POST", "/delete", bodies[0]["pod"])
    unknown = await call(
        sidecar_module, "POST", "/delete", podshapes.resources(str(uuid.uuid4()))["pod"]
    )
    assert again[0] == unknown[0] == 200

    remote_ns = f"offloading-{namespace}"
    await wait_all_gone(control_plane, remote_ns, [b["pod"]["metadata"]["uid"] for b in bodies])

    async def exists() -> bool:
        return namespace_exists(control_plane, remote_ns)

    await poll("the emptied namespace to be deleted", exists, lambda found: not found, timeout=60)


async def test_schema_violation_is_a_422_and_creates_nothing(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    namespace = f"invalid-{uuid.uuid4().hex[:6]}"
    body = podshapes.env_refs(str(uuid.uuid4()))
    body["pod"]["metadata"]["namespace"] = namespace
    body["pod"]["spec"]["containers"][0]["ports"] = [{"containerPort": "eighty"}]
    code, answer = await call(sidecar_module, "POST", "/create", body)
    assert code == 422
    assert b"pod.spec.containers[0].ports[0].containerPort" in answer
    assert not namespace_exists(control_plane, f"offloading-{namespace}")


async def test_remote_refusal_is_rolled_back(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    namespace = f"refused-{uuid.uuid4().hex[:6]}"
    body = podshapes.env_refs(str(uuid.uuid4()))
    body["pod"]["metadata"]["namespace"] = namespace
    # Schema-valid, refused by the API server's own validation: requests above limits.
    body["pod"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "2"},
        "limits": {"cpu": "1"},
    }
    code, answer = await call(sidecar_module, "POST", "/create", body)
    assert code == 422, answer
    assert b"creating Pod" in answer and b"removed the 2 object(s)" in answer
    remote_ns = f"offloading-{namespace}"
    assert not any(
        remote_objects(control_plane, remote_ns, body["pod"]["metadata"]["uid"]).values()
    )

    async def exists() -> bool:
        return namespace_exists(control_plane, remote_ns)

    await poll(
        "the namespace this create made to be removed", exists, lambda found: not found, timeout=60
    )


async def test_delete_during_an_outage_finishes_after_a_restart(
    start_sidecar: StartSidecar, control_plane: LocalCluster, tmp_path: Any
) -> None:
    state = tmp_path / "state"
    sidecar = start_sidecar(state_dir=state)
    body = podshapes.env_refs(str(uuid.uuid4()))
    uid = body["pod"]["metadata"]["uid"]
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer

    control_plane.stop_apiserver()
    try:
        code, answer = await call(sidecar, "POST", "/delete", body["pod"])
        assert code == 200, answer
        assert b"accepted" in answer
        assert sidecar.stop() == 0
        restarted = start_sidecar(state_dir=state, wait=False)
        restarted.wait_until_ready(probe="/healthz")
    finally:
        control_plane.start_apiserver()
    await wait_all_gone(control_plane, "offloading-default", [uid])

    async def pending() -> dict[str, Any]:
        pending_deletes: dict[str, Any] = json.loads((state / "pending-deletes.json").read_text())[
            "pending"
        ]
        return pending_deletes

    await poll("the journal to be emptied", pending, lambda entries: entries == {})
    assert "finished deleting" in restarted.log()


def test_sigkill_in_the_middle_of_a_create(
    start_sidecar: StartSidecar, control_plane: LocalCluster
) -> None:
    body = podshapes.many_config_maps(str(uuid.uuid4()), count=100)
    uid = body["pod"]["metadata"]["uid"]
    sidecar = start_sidecar()
    data = json.dumps(body).encode()

    def post() -> None:
        request = urllib.request.Request(sidecar.tcp_url + "/create", data=data, method="POST")
        with contextlib.suppress(OSError):  # the process is killed under this request
            urllib.request.urlopen(request, timeout=60).close()

    thread = threading.Thread(target=post)
    thread.start()
    deadline = time.monotonic() + scaled(30)
    while not remote_objects(control_plane, "offloading-default", uid)["ConfigMap"]:
        assert time.monotonic() < deadline, sidecar.log()
        time.sleep(0.01)  # polling a condition with a deadline
    sidecar.process.send_signal(signal.SIGKILL)
    sidecar.process.wait()
    thread.join()
    partial = remote_objects(control_plane, "offloading-default", uid)
    assert partial["Pod"] == [], "the create finished before the kill: the test proves nothing"
    assert 0 < len(partial["ConfigMap"]) < 100

    again = start_sidecar()
    code, answer = asyncio.run(call(again, "POST", "/create", body))
    assert code == 200, answer
    final = remote_objects(control_plane, "offloading-default", uid)
    assert len(final["Pod"]) == 1
    mounted = {
        v["configMap"]["name"] for v in final["Pod"][0]["spec"]["volumes"] if "configMap" in v
    }
    assert {c["metadata"]["name"] for c in final["ConfigMap"]} == mounted
    assert len(mounted) == 100
    code, _ = asyncio.run(call(again, "POST", "/delete", body["pod"]))
    assert code == 200
    asyncio.run(wait_all_gone(control_plane, "offloading-default", [uid]))


async def test_a_pod_upstream_made_is_deleted_with_its_copies(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    """Upstream named objects ``(name + "-" + uid)[:63]``: a long name lost the uid, and
    its objects carry no source annotations. A sidecar that replaced it finds them by
    label and deletes them all, copies included, not only the pod."""
    uid = str(uuid.uuid4())
    name = "a-pod-whose-name-is-long-enough-to-lose-the-uid"
    namespace = "offloading-default"
    labels = naming.ownership_labels(uid)
    upstream_name = naming.sanitize(f"{name}-{uid}"[:63])
    assert uid not in upstream_name
    with contextlib.suppress(urllib.error.HTTPError):  # 409: made by an earlier test
        control_plane.request(
            "POST",
            "/api/v1/namespaces",
            {"metadata": {"name": namespace, "labels": {naming.OFFLOADING_LABEL: "offloading"}}},
        )
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": naming.sanitize(f"settings-{name}-{uid}"[:63]), "labels": labels},
        "data": {"k": "v"},
    }
    control_plane.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", config_map)
    remote_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": upstream_name, "labels": labels},
        "spec": {
            "containers": [podshapes.container("main")],
            "volumes": [
                {"name": "settings", "configMap": {"name": config_map["metadata"]["name"]}}
            ],
            "automountServiceAccountToken": False,
        },
    }
    created = control_plane.request("POST", f"/api/v1/namespaces/{namespace}/pods", remote_pod)
    local = podshapes.pod(uid, name, {"containers": [podshapes.container("main")]})
    local["metadata"]["annotations"] = {"JobID": created["metadata"]["uid"]}

    async def state() -> str:
        code, answer = await call(sidecar_module, "GET", "/status", [local])
        assert code == 200, answer
        return next(iter(json.loads(answer)[0]["containers"][0]["state"]))

    await poll("the sidecar to see the upstream pod", state, lambda s: s != "terminated")
    code, answer = await call(sidecar_module, "POST", "/delete", local)
    assert code == 200, answer
    await wait_all_gone(control_plane, namespace, [uid])
