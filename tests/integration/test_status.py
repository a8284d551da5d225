"""/status from the watch-backed cache against scripted remote lifecycles (kwok stages)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from sidecar.status.mapping import DELETED_REASON
from tests import podshapes
from tests.deadlines import scaled
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar, launch
from tests.integration.plugin_client import call, metric_value, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane


async def create(sidecar: SidecarProcess, body: dict[str, Any]) -> dict[str, Any]:
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer
    pod: dict[str, Any] = body["pod"]
    return pod


async def status(sidecar: SidecarProcess, pod: dict[str, Any]) -> dict[str, Any]:
    code, answer = await call(sidecar, "GET", "/status", [pod])
    assert code == 200, answer
    [result] = json.loads(answer)
    return dict(result)


def states(result: dict[str, Any], key: str = "containers") -> list[str]:
    return [next(iter(c["state"]), "") for c in result[key]]


def annotated(annotations: dict[str, str], *containers: str) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    spec = {"containers": [podshapes.container(c) for c in containers]}
    return podshapes.body(podshapes.pod(uid, f"life-{uid[:8]}", spec, annotations=annotations))


@pytest.mark.parametrize(("code", "phase_word"), [("0", "Completed"), ("3", "Error")])
async def test_containers_exiting_with_a_code(
    sidecar_module: SidecarProcess, code: str, phase_word: str
) -> None:
    pod = await create(sidecar_module, annotated({"test.interlink.io/exit-code": code}, "a", "b"))
    result = await poll(
        "the containers to terminate",
        lambda: status(sidecar_module, pod),
        lambda r: states(r) == ["terminated", "terminated"],
    )
    for container in result["containers"]:
        ended = container["state"]["terminated"]
        assert ended["exitCode"] == int(code)
        assert ended["reason"] == phase_word
        assert ended["finishedAt"].endswith("Z")


async def test_a_container_restart_reaches_status(sidecar_module: SidecarProcess) -> None:
    pod = await create(sidecar_module, annotated({"test.interlink.io/restart": "true"}, "main"))
    result = await poll(
        "the restart to show",
        lambda: status(sidecar_module, pod),
        lambda r: r["containers"][0].get("restartCount") == 1,
    )
    main = result["containers"][0]
    assert "running" in main["state"]
    assert main["lastState"]["terminated"]["exitCode"] == 1
    observed = metric_value(sidecar_module, "sidecar_status_propagation_delay_seconds_count")
    assert observed >= 1, "the propagation delay of watch events is measured"


async def test_init_containers_in_spec_order(sidecar_module: SidecarProcess) -> None:
    uid = str(uuid.uuid4())
    spec = {
        "initContainers": [podshapes.container("first"), podshapes.container("second")],
        "containers": [podshapes.container("main")],
    }
    pod = await create(sidecar_module, podshapes.body(podshapes.pod(uid, f"init-{uid[:8]}", spec)))
    result = await poll(
        "init containers to complete and main to run",
        lambda: status(sidecar_module, pod),
        lambda r: states(r) == ["running"],
    )
    assert [c["name"] for c in result["initContainers"]] == ["first", "second"]
    assert states(result, "initContainers") == ["terminated", "terminated"]
    assert all(c["state"]["terminated"]["exitCode"] == 0 for c in result["initContainers"])


async def test_unschedulable_reason_reaches_status(sidecar_module: SidecarProcess) -> None:
    uid = str(uuid.uuid4())
    spec = {
        "containers": [podshapes.container("a"), podshapes.container("b")],
        "nodeSelector": {"example.org/no-such-node": "true"},
    }
    pod = await create(sidecar_module, podshapes.body(podshapes.pod(uid, f"stuck-{uid[:8]}", spec)))
    result = await poll(
        "the scheduler's verdict",
        lambda: status(sidecar_module, pod),
        lambda r: r["containers"][0]["state"].get("waiting", {}).get("reason") == "Unschedulable",
    )
    assert len(result["containers"]) == 2
    assert "node" in result["containers"][0]["state"]["waiting"]["message"]


async def test_pod_deleted_behind_our_back_is_terminated_with_a_reason(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    pod = await create(sidecar_module, annotated({}, "main"))
    await poll(
        "the pod to run", lambda: status(sidecar_module, pod), lambda r: states(r) == ["running"]
    )
    uid = pod["metadata"]["uid"]
    remote = control_plane.request(
        "GET",
        f"/api/v1/namespaces/offloading-default/pods?labelSelector=interlink.io/source.pod_uid={uid}",
    )["items"][0]
    samples = "sidecar_status_propagation_delay_seconds_count"
    observed = metric_value(sidecar_module, samples)
    control_plane.request(
        "DELETE", f"/api/v1/namespaces/offloading-default/pods/{remote['metadata']['name']}"
    )
    result = await poll(
        "the deletion to show",
        lambda: status(sidecar_module, pod),
        lambda r: states(r) == ["terminated"],
    )
    ended = result["containers"][0]["state"]["terminated"]
    assert ended["reason"] == DELETED_REASON
    assert ended["exitCode"] != 0
    assert "deleted" in ended["message"]
    # The deletion mark changed no status: it is not a propagation sample (it used to
    # be one, measuring the pod's age).
    assert metric_value(sidecar_module, samples) == observed


async def test_status_makes_no_remote_call(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    pod = await create(sidecar_module, annotated({}, "main"))
    await poll(
        "the pod to run", lambda: status(sidecar_module, pod), lambda r: states(r) == ["running"]
    )

    def pod_reads() -> int:
        return sum(
            1
            for e in control_plane.audit_events(user=control_plane.sidecar_user)
            if (e.get("objectRef") or {}).get("resource") == "pods"
            and e.get("verb") in ("get", "list")
            and e.get("stage") == "ResponseComplete"
        )

    before = pod_reads()
    assert before > 0, "the audit log must see the sidecar's own LIST, or this test proves nothing"
    results = await asyncio.gather(*(status(sidecar_module, pod) for _ in range(1000)))
    assert all(states(r) == ["running"] for r in results)
    assert pod_reads() == before


async def test_outage_makes_status_503_then_it_recovers(
    start_sidecar: StartSidecar, control_plane: LocalCluster
) -> None:
    sidecar = start_sidecar()
    pod = await create(sidecar, annotated({}, "main"))
    await poll("the pod to run", lambda: status(sidecar, pod), lambda r: states(r) == ["running"])

    async def answer() -> tuple[int, bytes]:
        return await call(sidecar, "GET", "/status", [pod])

    control_plane.stop_apiserver()
    try:
        _, body = await poll("/status to refuse stale data", answer, lambda a: a[0] == 503)
        assert b"not confirmed since" in body
        ping = await poll(
            "the ping to fail",
            lambda: call(sidecar, "GET", "/status", []),
            lambda a: a[0] == 503,
            timeout=20,
        )
        assert b"unreachable since" in ping[1]
        # Readiness is the plugin API's, not the remote's: interLink keeps reaching it.
        ready = await asyncio.to_thread(urllib.request.urlopen, sidecar.ops_url + "/readyz")
        with ready:
            assert ready.status == 200
    finally:
        control_plane.start_apiserver()
    await poll("/status to recover", answer, lambda a: a[0] == 200, timeout=60)
    result = await status(sidecar, pod)
    assert states(result) == ["running"]
    assert "watch restarts" in sidecar.log()
    started = time.monotonic()
    await poll(
        "the ping to recover",
        lambda: call(sidecar, "GET", "/status", []),
        lambda a: a[0] == 200,
        timeout=20,
    )
    assert time.monotonic() - started < 20


def gone_restarts(sidecar: SidecarProcess) -> float:
    return metric_value(sidecar, 'sidecar_watch_restarts_total{reason="gone"}')


def server_says_gone(cluster: LocalCluster, version: str) -> bool:
    """Would a watch from ``version`` be refused with 410 now? (Asks the real server.)"""
    try:
        answer = cluster.request(
            "GET", f"/api/v1/pods?watch=1&resourceVersion={version}&timeoutSeconds=1", timeout=10
        )
    except ValueError:
        return False  # several events: the server still has that history
    if not isinstance(answer, dict):
        return False
    return answer.get("type") == "ERROR" and (answer.get("object") or {}).get("code") == 410


def test_410_gone_forces_a_relist(tmp_path: Path, control_plane: LocalCluster) -> None:
    """The sidecar is frozen (SIGSTOP) until etcd has compacted away its last
    resourceVersion; resumed, its watch gets 410 Gone and must re-list.

    Its own small cluster: pods are watched from etcd (no watch cache) and etcd is
    compacted every 5 s, so "too old" happens in seconds instead of minutes.
    """
    cluster = LocalCluster(
        tmp_path / "cluster",
        control_plane.binaries,
        nodes=1,
        apiserver_flags=("--watch-cache-sizes=pods#0", "--etcd-compaction-interval=5s"),
    )
    with cluster:
        sidecar = launch(tmp_path, cluster, env={"K8S_WATCH_TIMEOUT_SECONDS": "2"})
        try:
            sidecar.wait_until_ready()
            asyncio.run(_freeze_until_gone(cluster, sidecar))
        finally:
            sidecar.process.kill()
            sidecar.process.wait()


async def _freeze_until_gone(cluster: LocalCluster, sidecar: SidecarProcess) -> None:
    pod = await create(sidecar, annotated({}, "main"))
    await poll("the pod to run", lambda: status(sidecar, pod), lambda r: states(r) == ["running"])
    version = cluster.request("GET", "/api/v1/pods?limit=1")["metadata"]["resourceVersion"]
    sidecar.process.send_signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + scaled(90)
        index = 0
        while not server_says_gone(cluster, version):
            assert time.monotonic() < deadline, "etcd kept the old revision"
            # Writes move etcd's revision past ours, so compaction can drop it.
            cluster.request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"churn-{index}"}},
            )
            index += 1
            await asyncio.sleep(0.2)  # paced writes while polling the server's verdict
    finally:
        sidecar.process.send_signal(signal.SIGCONT)
    await poll(
        "the watch to restart on 410",
        lambda: asyncio.to_thread(gone_restarts, sidecar),
        lambda count: count >= 1,
        timeout=60,
    )
    result = await poll(
        "/status after the re-list",
        lambda: status(sidecar, pod),
        lambda r: states(r) == ["running"],
    )
    assert result["UID"] == pod["metadata"]["uid"]
