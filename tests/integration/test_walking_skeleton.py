"""The whole path against the real control plane: create, Running, status, logs, delete."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.sidecar_process import SidecarProcess
from tests.integration import plugin_client
from tests.integration.plugin_client import call, create_body, new_pod, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

RFC3339_ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


async def status_of(sidecar: SidecarProcess, pod: dict[str, Any]) -> dict[str, Any]:
    code, body = await call(sidecar, "GET", "/status", [pod])
    assert code == 200, body
    answer = json.loads(body)
    assert len(answer) == 1
    result: dict[str, Any] = answer[0]
    return result


async def test_pod_lifecycle_through_the_plugin_api(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    pod = new_pod("main", "helper")
    uid = pod["metadata"]["uid"]

    code, body = await call(sidecar_module, "POST", "/create", create_body(pod))
    assert code == 200, body
    created = json.loads(body)
    assert created["PodUID"] == uid and created["PodJID"]

    def all_in(state: str) -> Callable[[dict[str, Any]], bool]:
        return lambda status: all(state in c["state"] for c in status["containers"])

    status = await poll(
        "the remote pod to run", lambda: status_of(sidecar_module, pod), all_in("running")
    )
    assert status["UID"] == uid and status["name"] == pod["metadata"]["name"]
    assert status["namespace"] == "default" and status["JID"] == created["PodJID"]
    assert [c["name"] for c in status["containers"]] == ["main", "helper"]
    for container in status["containers"]:
        assert RFC3339_ZONED.match(container["state"]["running"]["startedAt"])

    marker = f"hello from {uid}"
    control_plane.append_pod_log(marker)
    log_request = plugin_client.log_request(pod, "helper")
    code, body = await call(sidecar_module, "GET", "/getLogs", log_request)
    assert code == 200, body
    assert marker in body.decode()

    code, body = await call(sidecar_module, "POST", "/delete", pod)
    assert code == 200, body

    status = await poll(
        "the deleted pod to be reported terminated",
        lambda: status_of(sidecar_module, pod),
        all_in("terminated"),
    )
    assert [c["name"] for c in status["containers"]] == ["main", "helper"]
    for container in status["containers"]:
        ended = container["state"]["terminated"]
        assert ended["exitCode"] != 0
        assert ended["reason"] and ended["message"]
        assert RFC3339_ZONED.match(ended["finishedAt"])


async def test_delete_of_an_unknown_pod_is_fine(sidecar_module: SidecarProcess) -> None:
    code, body = await call(sidecar_module, "POST", "/delete", new_pod("main"))
    assert code == 200, body


async def test_ping_answers_200_when_the_remote_server_answers(
    sidecar_module: SidecarProcess,
) -> None:
    code, body = await call(sidecar_module, "GET", "/status", [])
    assert code == 200, body
    assert json.loads(body)["status"] == "ok"


async def test_status_and_logs_accept_post_too(sidecar_module: SidecarProcess) -> None:
    code, _ = await call(sidecar_module, "POST", "/status", [])
    assert code == 200


async def test_bad_create_body_names_the_field_and_creates_nothing(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    pod = new_pod("main", namespace="never-created")
    del pod["metadata"]["uid"]
    code, body = await call(sidecar_module, "POST", "/create", create_body(pod))
    assert code == 422
    assert b"pod.metadata.uid" in body
    namespaces = control_plane.request("GET", "/api/v1/namespaces")["items"]
    assert "offloading-never-created" not in {n["metadata"]["name"] for n in namespaces}


async def test_logs_of_an_unknown_pod_are_a_404(sidecar_module: SidecarProcess) -> None:
    pod = new_pod("main")
    code, body = await call(
        sidecar_module,
        "GET",
        "/getLogs",
        {
            "Namespace": "default",
            "PodUID": pod["metadata"]["uid"],
            "PodName": pod["metadata"]["name"],
            "ContainerName": "main",
            "Opts": {},
        },
    )
    assert code == 404
    assert pod["metadata"]["uid"].encode() in body
