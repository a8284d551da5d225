"""/getLogs streams the remote container log: follow, tail, bytes, times, disconnects."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import podshapes
from tests.fixtures.sidecar_process import SidecarProcess
from tests.http_client import client_session
from tests.integration import plugin_client
from tests.integration.plugin_client import call, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane


@pytest.fixture(scope="module")
def running_pod(sidecar_module: SidecarProcess) -> dict[str, Any]:
    """A running two-container pod, shared by the module's tests."""
    return asyncio.run(_running_pod(sidecar_module))


async def _running_pod(sidecar_module: SidecarProcess) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    body = podshapes.body(
        podshapes.pod(
            uid,
            f"logs-{uid[:8]}",
            {"containers": [podshapes.container("main"), podshapes.container("side")]},
        )
    )
    code, answer = await call(sidecar_module, "POST", "/create", body)
    assert code == 200, answer

    async def phase() -> list[str]:
        _, raw = await call(sidecar_module, "GET", "/status", [body["pod"]])
        return [next(iter(c["state"])) for c in json.loads(raw)[0]["containers"]]

    await poll("the pod to run", phase, lambda s: s == ["running", "running"])
    return dict(body["pod"])


def log_request(pod: dict[str, Any], **opts: Any) -> dict[str, Any]:
    return plugin_client.log_request(pod, "side", **opts)


def metric(sidecar: SidecarProcess, name: str) -> float:
    return plugin_client.metric_value(sidecar, name)


async def test_follow_streams_new_lines_and_stops_when_the_client_leaves(
    sidecar_module: SidecarProcess, control_plane: LocalCluster, running_pod: dict[str, Any]
) -> None:
    marker = uuid.uuid4().hex
    body = json.dumps(log_request(running_pod, Follow=True, Tail=1))
    async with (
        client_session() as session,
        session.get(sidecar_module.tcp_url + "/getLogs", data=body) as response,
    ):
        assert response.status == 200
        await poll(
            "the stream to be counted",
            lambda: asyncio.to_thread(metric, sidecar_module, "sidecar_logs_streams"),
            lambda v: v >= 1,
        )
        received = b""
        for index in range(3):
            control_plane.append_pod_log(f"{marker} line {index}")
            async with asyncio.timeout(15):
                while f"{marker} line {index}".encode() not in received:
                    received += await response.content.readany()
        assert json.dumps({"k": marker}).encode() not in received
        control_plane.append_pod_log(json.dumps({"k": marker}))
        async with asyncio.timeout(15):
            while json.dumps({"k": marker}).encode() not in received:
                received += await response.content.readany()
    await poll(
        "the remote stream to be closed",
        lambda: asyncio.to_thread(metric, sidecar_module, "sidecar_logs_streams"),
        lambda v: v == 0,
    )


async def test_a_client_leaving_a_follow_while_lines_flow_is_not_an_error(
    sidecar_module: SidecarProcess, control_plane: LocalCluster, running_pod: dict[str, Any]
) -> None:
    """``kubectl logs -f`` and Ctrl-C: the sidecar's next write to the gone client fails.
    That is how a follow ends, not an error: no ERROR line, no 500 counted."""
    marker = uuid.uuid4().hex
    errors = 'sidecar_api_requests_total{route="/getLogs",method="GET",code="500"}'
    errors_before = metric(sidecar_module, errors)
    log_before = len(sidecar_module.log())
    stop_writing = asyncio.Event()

    async def write_lines() -> None:  # bounded: at most 4,000 lines
        for index in range(4000):
            if stop_writing.is_set():
                return
            control_plane.append_pod_log(f"{marker} flowing {index}")
            await asyncio.sleep(0.005)  # the pace of a chatty program, not a wait

    writer = asyncio.create_task(write_lines())
    try:
        body = json.dumps(log_request(running_pod, Follow=True, Tail=1))
        async with client_session() as session:
            response = await session.get(sidecar_module.tcp_url + "/getLogs", data=body)
            assert response.status == 200
            received = b""
            async with asyncio.timeout(30):
                while received.count(marker.encode()) < 20:
                    received += await response.content.readany()
            response.close()  # leave while lines keep coming
        await poll(
            "the remote stream to be closed",
            lambda: asyncio.to_thread(metric, sidecar_module, "sidecar_logs_streams"),
            lambda v: v == 0,
        )
    finally:
        stop_writing.set()
        await writer
    assert metric(sidecar_module, errors) == errors_before
    after = sidecar_module.log()[log_before:]
    assert "ERROR" not in after and "Traceback" not in after, after


async def test_tail(
    sidecar_module: SidecarProcess, control_plane: LocalCluster, running_pod: dict[str, Any]
) -> None:
    marker = uuid.uuid4().hex
    for index in range(5):
        control_plane.append_pod_log(f"{marker} tail {index}")
    code, body = await call(sidecar_module, "GET", "/getLogs", log_request(running_pod, Tail=2))
    assert code == 200
    assert body.decode().splitlines() == [f"{marker} tail 3", f"{marker} tail 4"]


async def test_bytes_limit(
    sidecar_module: SidecarProcess, control_plane: LocalCluster, running_pod: dict[str, Any]
) -> None:
    control_plane.append_pod_log("x" * 100)
    code, body = await call(sidecar_module, "GET", "/getLogs", log_request(running_pod, Bytes=10))
    assert code == 200
    assert 0 < len(body) <= 10


async def test_timestamps_and_since_time(
    sidecar_module: SidecarProcess, control_plane: LocalCluster, running_pod: dict[str, Any]
) -> None:
    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    now = datetime.now(UTC)
    control_plane.append_pod_log(f"{old} before", at=now - timedelta(minutes=2))
    control_plane.append_pod_log(f"{new} after", at=now)
    since = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, body = await call(
        sidecar_module,
        "GET",
        "/getLogs",
        log_request(running_pod, SinceTime=since, Timestamps=True),
    )
    assert code == 200
    text = body.decode()
    assert new in text and old not in text
    line = next(line for line in text.splitlines() if new in line)
    stamp = line.split(" ", 1)[0]
    assert datetime.fromisoformat(stamp).tzinfo is not None


async def test_unknown_container_is_a_404(
    sidecar_module: SidecarProcess, running_pod: dict[str, Any]
) -> None:
    request = log_request(running_pod) | {"ContainerName": "nope"}
    code, body = await call(sidecar_module, "GET", "/getLogs", request)
    assert code == 404
    assert b"'nope'" in body and b"main, side" in body
