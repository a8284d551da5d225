"""Health that means something, against the real control plane: etcd stopped is seen
by the ping and fails creates fast; a remote outage leaves the plugin serving (deletes
journalled, finished after); a watcher without the ``watch`` right fails liveness
within its window while a healthy one does not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import podshapes
from tests.deadlines import scaled
from tests.fixtures.sidecar_process import StartSidecar
from tests.integration.plugin_client import call, ops_get_async, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

REMOTE_NAMESPACE = "offloading-default"


def new_body() -> dict[str, Any]:
    uid = str(uuid.uuid4())
    spec = {"containers": [podshapes.container("main")]}
    return podshapes.body(podshapes.pod(uid, f"health-{uid[:8]}", spec))


def remote_pods(cluster: LocalCluster, uid: str) -> list[dict[str, Any]]:
    path = (
        f"/api/v1/namespaces/{REMOTE_NAMESPACE}/pods"
        f"?labelSelector=interlink.io%2Fsource.pod_uid%3D{uid}"
    )
    items: list[dict[str, Any]] = cluster.request("GET", path)["items"]
    return items


async def test_etcd_down_fails_the_ping_and_creates_fast_then_recovers(
    start_sidecar: StartSidecar, control_plane: LocalCluster
) -> None:
    sidecar = start_sidecar()
    assert (await call(sidecar, "GET", "/status", []))[0] == 200
    control_plane.stop_etcd()
    try:
        # GET /version still answers: the check must read from storage to see this.
        assert "gitVersion" in control_plane.request("GET", "/version")
        started = time.monotonic()
        code, answer = await poll(
            "the ping to fail",
            lambda: call(sidecar, "GET", "/status", []),
            lambda a: a[0] == 503,
            timeout=30,
        )
        assert time.monotonic() - started < 20, "bounded: a 5 s probe interval, a 5 s limit"
        assert b"unreachable since" in answer and b"etcd" in answer

        started = time.monotonic()
        code, answer = await call(sidecar, "POST", "/create", new_body())
        assert code == 503, answer
        assert time.monotonic() - started < 3, "fast, not after a 30 s hang"
        assert b"not offloaded" in answer and b"unreachable since" in answer

        status, body = await ops_get_async(sidecar, "/readyz")
        assert status == 200 and "unreachable since" in body, body
        assert (await ops_get_async(sidecar, "/healthz"))[0] == 200, "no restart for an outage"
    finally:
        control_plane.start_etcd()
    await poll(
        "the ping to recover",
        lambda: call(sidecar, "GET", "/status", []),
        lambda a: a[0] == 200,
        timeout=60,
    )
    code, answer = await call(sidecar, "POST", "/create", new_body())
    assert code == 200, answer


async def test_a_remote_outage_leaves_the_plugin_serving_and_loses_no_delete(
    start_sidecar: StartSidecar, control_plane: LocalCluster, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    sidecar = start_sidecar(state_dir=state)
    body = new_body()
    uid = body["pod"]["metadata"]["uid"]
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer

    control_plane.stop_apiserver()
    try:
        await poll(
            "the prober to see the outage",
            lambda: call(sidecar, "GET", "/status", []),
            lambda a: a[0] == 503,
            timeout=30,
        )
        # Readiness stays: the Service keeps its endpoint, interLink's calls arrive.
        status, text = await ops_get_async(sidecar, "/readyz")
        assert status == 200 and "unreachable since" in text, text
        code, answer = await call(sidecar, "POST", "/delete", body["pod"])
        assert code == 200 and b"accepted" in answer, answer
        pending = json.loads((state / "pending-deletes.json").read_text())["pending"]
        assert uid in pending, "journalled during the outage"
        code, answer = await call(sidecar, "POST", "/create", new_body())
        assert code == 503, answer
    finally:
        control_plane.start_apiserver()
    await poll(
        "the delete to be finished after the outage",
        lambda: asyncio.to_thread(remote_pods, control_plane, uid),
        lambda pods: pods == [],
        timeout=90,
    )
    await poll(
        "the journal to be emptied",
        lambda: asyncio.to_thread(
            lambda: json.loads((state / "pending-deletes.json").read_text())["pending"]
        ),
        lambda entries: entries == {},
    )


# --- a watcher that cannot watch ------------------------------------------------------------

NO_WATCH = "interlink-test-no-watch"


@contextlib.contextmanager
def account_without_watch(cluster: LocalCluster, kubeconfig: Path) -> Iterator[Path]:
    """A ServiceAccount that may list pods but not watch them (and read namespaces, so
    the prober finds the remote serving); its kubeconfig at ``kubeconfig``. Removed at
    the end."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    objects = [
        (
            "/api/v1/namespaces/default/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NO_WATCH}},
        ),
        (
            f"{rbac}/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": NO_WATCH},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
                ],
            },
        ),
        (
            f"{rbac}/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": NO_WATCH},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": NO_WATCH,
                },
                "subjects": [{"kind": "ServiceAccount", "name": NO_WATCH, "namespace": "default"}],
            },
        ),
    ]
    created: list[str] = []
    try:
        for collection, obj in objects:
            cluster.request("POST", collection, obj)
            created.append(f"{collection}/{NO_WATCH}")
        token = cluster.service_account_token("default", NO_WATCH, seconds=3600)
        deadline = time.monotonic() + scaled(30)
        pods = "/api/v1/pods?limit=1"
        while True:  # the RBAC authorizer learns the binding from a watch
            try:
                cluster.request("GET", pods, token=token)
                break
            except urllib.error.HTTPError:
                assert time.monotonic() < deadline, "the binding never took effect"
                time.sleep(0.2)  # polling a condition with a deadline
        cluster.write_kubeconfig(kubeconfig, NO_WATCH, token)
        yield kubeconfig
    finally:
        for path in reversed(created):
            with contextlib.suppress(urllib.error.URLError, OSError):
                cluster.request("DELETE", path)


async def test_a_watcher_that_cannot_watch_fails_liveness_within_its_window(
    start_sidecar: StartSidecar, control_plane: LocalCluster, tmp_path: Path
) -> None:
    window = {"K8S_WATCH_STALL_SECONDS": "20", "K8S_WATCH_INACTIVITY_SECONDS": "8"}
    healthy = start_sidecar(env=window)  # the control: same window, the watch works
    with account_without_watch(control_plane, tmp_path / "no-watch.kubeconfig") as kubeconfig:
        broken = start_sidecar(env=window | {"K8S_KUBECONFIG_PATH": str(kubeconfig)})
        assert (await call(broken, "GET", "/status", []))[0] == 200, "the remote serves"
        started = time.monotonic()
        status, body = await poll(
            "/healthz to fail",
            lambda: ops_get_async(broken, "/healthz"),
            lambda answer: answer[0] == 503,
            timeout=60,
        )
        assert time.monotonic() - started < 45, "within the window and a probe"
        assert "remote-watcher" in body and "no watch progress" in body, body
        assert "cannot watch" in body or "forbidden" in body.lower(), body
        assert (await ops_get_async(broken, "/readyz"))[0] == 200, "the plugin API still serves"
        status, body = await ops_get_async(healthy, "/healthz")
        assert status == 200, f"an idle healthy watch is not a stall: {body}"
