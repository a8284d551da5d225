"""Orphaned remote pods, against the real control plane and a real sidecar process.

The test plays the virtual kubelet: it creates pods through ``/create`` and asks
``/status`` about them the way interLink's status loop does (every pod that is not
terminal locally, again and again; a terminal one never again). A pod it stops asking
about, while it keeps asking about others, has lost its local pod and its ``/delete``:
the sidecar reports it on ``/orphans`` and, with ``offloading.orphan_policy = delete``,
reaps it and everything of it a sweep later. Finished pods, pods still asked about,
pods of a silent virtual node and pods whose local pod exists are never touched. With
``k8s.local_kubeconfig_path`` the control plane doubles as the LOCAL cluster (the local
pod objects live in their own namespace; remote ones in ``offloading-*``), read with
the ServiceAccount of ``manifests/rbac/local-read-rbac.yaml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sidecar.core import naming
from tests import podshapes
from tests.deadlines import scaled
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar
from tests.http_client import client_session
from tests.integration.plugin_client import call, metric_value, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

LOCAL_READ_RBAC = (
    Path(__file__).resolve().parents[2] / "manifests" / "rbac" / "local-read-rbac.yaml"
)
PLURALS = {"Pod": "pods", "ConfigMap": "configmaps", "Secret": "secrets"}
EXIT_0 = {"test.interlink.io/exit-code": "0"}
NOWHERE = {"test.interlink.io/nowhere": "true"}  # no node matches: a local pod stays Pending


# --- helpers -------------------------------------------------------------------------


def body_for(
    name: str,
    namespace: str,
    *,
    uid: str | None = None,
    node: str = podshapes.VIRTUAL_NODE,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    uid = uid or str(uuid.uuid4())
    spec = {"containers": [podshapes.container("main")], "nodeName": node}
    pod = podshapes.pod(uid, name, spec, annotations=annotations, namespace=namespace)
    return podshapes.body(pod)


def with_copies(name: str, namespace: str) -> dict[str, Any]:
    """A pod mounting a ConfigMap, a Secret and projected data (copied remotely)."""
    body = podshapes.shared_volumes(str(uuid.uuid4()))
    body["pod"]["metadata"].update(name=name, namespace=namespace)
    return body


async def create(sidecar: SidecarProcess, body: dict[str, Any]) -> dict[str, Any]:
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer
    pod: dict[str, Any] = body["pod"]
    return pod


async def delete(sidecar: SidecarProcess, pod: dict[str, Any]) -> None:
    code, answer = await call(sidecar, "POST", "/delete", pod)
    assert code == 200, answer


async def orphans_report(sidecar: SidecarProcess) -> dict[str, Any]:
    async with (
        client_session() as session,
        session.get(sidecar.ops_url + "/orphans") as response,
    ):
        assert response.status == 200
        report: dict[str, Any] = await response.json()
        return report


def listed(report: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any] | None:
    for entry in report["orphans"]:
        if entry["pod_uid"] == pod["metadata"]["uid"]:
            return dict(entry)
    return None


def remote_namespace(pod: dict[str, Any]) -> str:
    return f"offloading-{pod['metadata']['namespace']}"


def remote_objects(cluster: LocalCluster, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Every remote object labelled with the pod's uid (``kind`` set on each)."""
    selector = f"{naming.POD_UID_LABEL}={pod['metadata']['uid']}"
    found = []
    for kind, plural in PLURALS.items():
        listing = cluster.request(
            "GET", f"/api/v1/namespaces/{remote_namespace(pod)}/{plural}?labelSelector={selector}"
        )
        items = listing.get("items", []) if isinstance(listing, dict) else []
        found += [item | {"kind": kind} for item in items]
    return found


def remote_pod(cluster: LocalCluster, pod: dict[str, Any]) -> dict[str, Any] | None:
    pods = [o for o in remote_objects(cluster, pod) if o["kind"] == "Pod"]
    return pods[0] if pods else None


def untouched(cluster: LocalCluster, pod: dict[str, Any]) -> bool:
    found = remote_pod(cluster, pod)
    return found is not None and found["metadata"].get("deletionTimestamp") is None


def namespace_gone(cluster: LocalCluster, name: str) -> bool:
    try:
        found = cluster.request("GET", f"/api/v1/namespaces/{name}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return True
        raise
    return bool(found["status"].get("phase") == "Terminating")


def sweep_time(report: dict[str, Any]) -> float:
    stamp = report.get("last_sweep")
    return datetime.fromisoformat(stamp).timestamp() if stamp else 0.0


async def sweep_after(sidecar: SidecarProcess, moment: float, *, timeout: float) -> dict[str, Any]:
    """The report of the first sweep that started after wall-clock ``moment``."""
    report: dict[str, Any] = await poll(
        "a sweep after the moment of interest",
        lambda: orphans_report(sidecar),
        lambda r: sweep_time(r) > moment + 1,  # the stamp has whole seconds
        timeout=timeout,
    )
    return report


def terminated(status: dict[str, Any]) -> bool:
    containers = status.get("containers") or []
    return bool(containers) and all("terminated" in c.get("state", {}) for c in containers)


class VirtualKubelet:
    """Asks ``/status`` about its pods one per call, a round a second (the real one: every
    5 s), and never again about a pod once it is terminal, like interLink's status loop."""

    def __init__(self, sidecar: SidecarProcess) -> None:
        self.sidecar = sidecar
        self.pods: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.stopped_at: dict[str, float] = {}
        """Wall-clock time the loop stopped asking about a pod (terminal or forgotten)."""

    def ask_about(self, *pods: dict[str, Any]) -> None:
        for pod in pods:
            self.pods[pod["metadata"]["uid"]] = pod

    def forget(self, pod: dict[str, Any]) -> None:
        """The local pod is gone and its /delete was lost: never asked about again."""
        uid = pod["metadata"]["uid"]
        self.pods.pop(uid, None)
        self.stopped_at[uid] = time.time()

    async def run(self) -> None:
        while True:
            for uid, pod in list(self.pods.items()):
                code, answer = await call(self.sidecar, "GET", "/status", [pod])
                if code != 200:
                    continue
                (status,) = json.loads(answer)
                self.statuses[uid] = status
                if terminated(status):
                    self.forget(pod)
            await asyncio.sleep(1)  # the status loop's period (polling, not a test wait)


@contextlib.asynccontextmanager
async def running(vk: VirtualKubelet) -> AsyncIterator[VirtualKubelet]:
    task = asyncio.create_task(vk.run())
    try:
        yield vk
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- the tests -----------------------------------------------------------------------


async def test_an_unpolled_pod_is_reported_then_reaped_and_the_others_are_untouched(
    start_sidecar: StartSidecar, control_plane: LocalCluster
) -> None:
    window = 12
    sidecar = start_sidecar(f"orphan_after_seconds = {window}\norphan_policy = delete\n")
    suffix = uuid.uuid4().hex[:6]
    a = await create(sidecar, with_copies(f"a-{suffix}", f"orphan-a-{suffix}"))
    b = await create(sidecar, body_for(f"b-{suffix}", f"orphan-bc-{suffix}"))
    c = await create(sidecar, body_for(f"c-{suffix}", f"orphan-bc-{suffix}", annotations=EXIT_0))
    kinds = {o["kind"] for o in remote_objects(control_plane, a)}
    assert kinds == {"Pod", "ConfigMap", "Secret"}, "a's ConfigMaps and Secrets are copied"
    try:
        async with running(VirtualKubelet(sidecar)) as vk:
            vk.ask_about(a, b, c)

            async def b_running_c_finished() -> bool:
                b_status = vk.statuses.get(b["metadata"]["uid"]) or {"containers": [{}]}
                running_b = "running" in b_status["containers"][0].get("state", {})
                return running_b and c["metadata"]["uid"] in vk.stopped_at

            await poll("b running and c finished", b_running_c_finished, bool, timeout=60)
            vk.forget(a)  # a's local pod is deleted, and its /delete is lost

            report = await poll(
                "a reported as orphaned",
                lambda: orphans_report(sidecar),
                lambda r: listed(r, a) is not None,
                timeout=window * 3 + 30,
            )
            entry = listed(report, a)
            assert entry is not None
            assert entry["evidence"] == "unpolled"
            assert entry["unpolled_seconds"] >= window
            assert entry["local"] == {
                "namespace": a["metadata"]["namespace"],
                "name": a["metadata"]["name"],
            }
            assert entry["remote"]["namespace"] == remote_namespace(a)
            assert entry["node"] == podshapes.VIRTUAL_NODE
            assert entry["phase"] in ("Pending", "Running")
            assert entry["reap_at"] >= entry["first_seen"]
            assert listed(report, b) is None and listed(report, c) is None
            assert report["policy"] == "delete" and report["unpolled_rule"]["judging"]

            await poll(
                "a and all its objects deleted remotely",
                lambda: asyncio.to_thread(remote_objects, control_plane, a),
                lambda objects: not objects,
                timeout=60,
            )
            await poll(
                "a's remote namespace (ours, now empty) deleted",
                lambda: asyncio.to_thread(namespace_gone, control_plane, remote_namespace(a)),
                bool,
                timeout=60,
            )
            assert metric_value(sidecar, 'sidecar_janitor_orphans_reaped_total{kind="Pod"}') >= 1
            log = sidecar.log()
            found_at = log.index(
                f"orphan pod found: {a['metadata']['namespace']}/{a['metadata']['name']}"
            )
            reaped_at = log.index(
                f"reaped orphan pod {a['metadata']['namespace']}/{a['metadata']['name']}"
            )
            assert found_at < reaped_at, "reported before it was reaped"

            # b (still asked about) and c (finished, never asked about again, its local
            # pod still there) stay, also a whole window after c was last asked about.
            later = max(time.time(), vk.stopped_at[c["metadata"]["uid"]] + window)
            report = await sweep_after(sidecar, later, timeout=window * 3 + 30)
            assert listed(report, b) is None and listed(report, c) is None
            assert untouched(control_plane, b) and untouched(control_plane, c)
            finished = remote_pod(control_plane, c)
            assert finished is not None and finished["status"]["phase"] == "Succeeded"
    finally:
        for pod in (a, b, c):
            await delete(sidecar, pod)


async def test_report_only_and_nothing_judged_for_a_silent_virtual_node(
    start_sidecar: StartSidecar, control_plane: LocalCluster
) -> None:
    window = 10
    sidecar = start_sidecar(f"orphan_after_seconds = {window}\norphan_policy = report\n")
    suffix = uuid.uuid4().hex[:6]
    namespace = f"orphan-report-{suffix}"
    d = await create(sidecar, body_for(f"d-{suffix}", namespace, node="vk-dead"))
    e = await create(sidecar, body_for(f"e-{suffix}", namespace, node="vk-alive"))
    f = await create(sidecar, body_for(f"f-{suffix}", namespace, node="vk-alive"))
    created = time.time()
    try:
        # Silent: interLink only pings (no /status call with pods), for longer than the
        # window after the pods were made and after the sidecar started.
        async def ping_then_report() -> dict[str, Any]:
            code, _ = await call(sidecar, "GET", "/status", [])
            assert code == 200
            return await orphans_report(sidecar)

        report = await poll(
            "a sweep a window after the pods were made, the sidecar up a window",
            ping_then_report,
            lambda r: sweep_time(r) > created + window + 1 and r["uptime_seconds"] > window,
            timeout=window * 3 + 30,
        )
        assert not [p for p in (d, e, f) if listed(report, p)], report
        assert report["unpolled_rule"]["judging"] is False
        assert report["unpolled_rule"]["last_ping_seconds_ago"] is not None

        # Node vk-alive comes back and asks about e only: f (same node, never asked
        # about) is orphaned; d's node stays silent, so d is not judged.
        async with running(VirtualKubelet(sidecar)) as vk:
            vk.ask_about(e)
            report = await poll(
                "f reported as orphaned",
                lambda: orphans_report(sidecar),
                lambda r: listed(r, f) is not None,
                timeout=window * 3 + 30,
            )
            entry = listed(report, f)
            assert entry is not None and entry["evidence"] == "unpolled"
            assert entry["node"] == "vk-alive" and "vk-alive" in entry["detail"]
            assert entry["reap_at"] is None
            assert listed(report, d) is None and listed(report, e) is None

            # Policy report: a few sweeps later, f is still reported and still there.
            sweeps = report["sweeps"]
            report = await poll(
                "three more sweeps",
                lambda: orphans_report(sidecar),
                lambda r: r["sweeps"] >= sweeps + 3,
                timeout=window * 3 + 30,
            )
            assert listed(report, f) is not None and listed(report, d) is None
            for pod in (d, e, f):
                assert untouched(control_plane, pod), pod["metadata"]["name"]
            assert metric_value(sidecar, 'sidecar_janitor_orphans_reaped_total{kind="Pod"}') == 0
            assert metric_value(sidecar, "sidecar_janitor_orphan_pods") >= 1
    finally:
        for pod in (d, e, f):
            await delete(sidecar, pod)


def local_read_kubeconfig(cluster: LocalCluster, path: Path) -> Path:
    """A kubeconfig of the local-read ServiceAccount, once RBAC lets it list pods."""
    with contextlib.suppress(urllib.error.HTTPError):  # 409: it exists already
        cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": "interlink"}})
    cluster.apply_manifest(LOCAL_READ_RBAC)
    token = cluster.service_account_token("interlink", "interlink-sidecar-local-read")
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "resource": "pods"}},
    }
    deadline = time.monotonic() + scaled(30)
    while not cluster.request(
        "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, token=token
    )["status"].get("allowed"):
        assert time.monotonic() < deadline, "RBAC never granted list pods"
        time.sleep(0.2)  # polling a condition with a deadline
    cluster.write_kubeconfig(path, "local-read", token)
    return path


def local_pod(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    """A pod object in the LOCAL cluster that no node ever runs (it stays Pending)."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [podshapes.container("main")], "nodeSelector": NOWHERE},
    }
    created: dict[str, Any] = cluster.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
    return created


async def test_with_the_local_cluster_a_gone_local_pod_is_reaped_and_an_existing_one_kept(
    start_sidecar: StartSidecar, control_plane: LocalCluster, tmp_path: Path
) -> None:
    window = 10
    kubeconfig = local_read_kubeconfig(control_plane, tmp_path / "local.kubeconfig")
    sidecar = start_sidecar(
        f"orphan_after_seconds = {window}\norphan_policy = delete\n",
        env={"K8S_LOCAL_KUBECONFIG_PATH": str(kubeconfig)},
    )
    suffix = uuid.uuid4().hex[:6]
    namespace = f"orphan-local-{suffix}"
    control_plane.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    # g's local pod goes away (its /delete is lost); c's stays while its remote pod has
    # finished. The virtual kubelet never asks about either: the local cluster decides.
    local_g = local_pod(control_plane, namespace, f"g-{suffix}")
    local_c = local_pod(control_plane, namespace, f"c-{suffix}")
    g = await create(
        sidecar, body_for(local_g["metadata"]["name"], namespace, uid=local_g["metadata"]["uid"])
    )
    c = await create(
        sidecar,
        body_for(
            local_c["metadata"]["name"],
            namespace,
            uid=local_c["metadata"]["uid"],
            annotations=EXIT_0,
        ),
    )
    created = time.time()
    control_plane.request(
        "DELETE", f"/api/v1/namespaces/{namespace}/pods/{local_g['metadata']['name']}"
    )
    try:
        report = await poll(
            "g reported as orphaned",
            lambda: orphans_report(sidecar),
            lambda r: listed(r, g) is not None,
            timeout=window * 3 + 30,
        )
        entry = listed(report, g)
        assert entry is not None and entry["evidence"] == "local_pod_not_found"
        assert report["local_read"] == {"enabled": True, "error": None}
        assert report["unpolled_rule"]["judging"] is False  # silent: only the local read
        await poll(
            "g deleted remotely",
            lambda: asyncio.to_thread(remote_objects, control_plane, g),
            lambda objects: not objects,
            timeout=60,
        )
        report = await sweep_after(sidecar, created + window, timeout=window * 3 + 30)
        assert listed(report, c) is None
        assert untouched(control_plane, c)
        finished = remote_pod(control_plane, c)
        assert finished is not None and finished["status"]["phase"] == "Succeeded"
    finally:
        for pod in (g, c):
            await delete(sidecar, pod)
        with contextlib.suppress(urllib.error.HTTPError):
            control_plane.request("DELETE", f"/api/v1/namespaces/{namespace}")
