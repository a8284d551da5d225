"""Limits at the plugin API: slow clients cut off, a cap on concurrent requests, a deadline
on ``/create``, and a pod uid that names one pod only. Against the real sidecar process
and control plane; slow creates are made slow by the admission webhook that holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import pytest

from tests import podshapes
from tests.fixtures.admission_gate import AdmissionGate
from tests.fixtures.sidecar_process import StartSidecar
from tests.http_client import client_session
from tests.integration.plugin_client import call, create_body, new_pod, poll
from tests.integration.test_offloading import remote_objects
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

HEADER_TIMEOUT = 3
BODY_TIMEOUT = 3


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes the connection (EOF), failing after ``limit``."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        while await reader.read(4096):
            pass
    return time.monotonic() - started


async def test_a_client_that_never_finishes_its_headers_is_cut_off(
    start_sidecar: StartSidecar,
) -> None:
    sidecar = start_sidecar(env={"APP_REQUEST_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT)})
    connections = [
        await asyncio.open_connection("127.0.0.1", port_of(sidecar.tcp_url)) for _ in range(20)
    ]
    try:
        for _, writer in connections:
            writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        waited = await asyncio.gather(
            *(closed_after(reader, HEADER_TIMEOUT * 10) for reader, _ in connections)
        )
    finally:
        for _, writer in connections:
            writer.close()
        await asyncio.gather(
            *(writer.wait_closed() for _, writer in connections), return_exceptions=True
        )
    assert max(waited) < HEADER_TIMEOUT * 10
    # The plugin API still answers.
    code, _ = await call(sidecar, "GET", "/status", [])
    assert code in (200, 503)


async def test_a_body_that_never_arrives_gets_408(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar(env={"APP_REQUEST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT)})
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(sidecar.tcp_url))
    writer.write(
        b"POST /delete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"metadata":'
    )
    try:
        async with asyncio.timeout(BODY_TIMEOUT * 10):
            status_line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 408"), status_line


async def test_beyond_the_concurrency_cap_the_answer_is_503_with_retry_after(
    start_sidecar: StartSidecar, gate: AdmissionGate
) -> None:
    sidecar = start_sidecar(env={"APP_MAX_CONCURRENT_REQUESTS": "2"})
    bodies = [create_body(new_pod("main", name="capped")) for _ in range(2)]
    with contextlib.ExitStack() as stack:
        holds = [stack.enter_context(gate.hold(b["pod"]["metadata"]["uid"])) for b in bodies]
        creating = [asyncio.create_task(call(sidecar, "POST", "/create", b)) for b in bodies]
        for hold in holds:
            await asyncio.to_thread(hold.wait_arrived, 30)
        # Two creates are in the handlers, held by the webhook: the third request waits
        # for nothing and gets its answer at once.
        async with (
            client_session() as session,
            session.get(sidecar.tcp_url + "/status", data="[]") as response,
        ):
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert "app.max_concurrent_requests" in await response.text()
    for task in creating:
        code, answer = await task
        assert code == 200, answer
    for body in bodies:
        assert (await call(sidecar, "POST", "/delete", body["pod"]))[0] == 200


async def test_a_create_past_its_deadline_answers_504_and_leaves_nothing(
    start_sidecar: StartSidecar, control_plane: LocalCluster, gate: AdmissionGate
) -> None:
    sidecar = start_sidecar(env={"APP_CREATE_DEADLINE_SECONDS": "3"})
    body = podshapes.SHAPES["shared-volumes"](str(uuid.uuid4()))
    uid = body["pod"]["metadata"]["uid"]
    with gate.hold(uid, "Pod") as held:
        code, answer = await call(sidecar, "POST", "/create", body)
        held.release()
    assert code == 504, answer
    assert b"app.create_deadline_seconds" in answer

    async def leftovers() -> list[str]:
        found = remote_objects(control_plane, "offloading-default", uid)
        return [f"{kind} {o['metadata']['name']}" for kind, items in found.items() for o in items]

    # The held pod write completes after the answer; the janitor then removes it all.
    await poll("nothing of the late create left", leftovers, lambda left: not left, timeout=90)


async def test_a_uid_names_one_pod_only(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar()
    first = create_body(new_pod("main", name="first"))
    code, answer = await call(sidecar, "POST", "/create", first)
    assert code == 200, answer
    jid = json.loads(answer)["PodJID"]
    impostor: dict[str, Any] = json.loads(json.dumps(first))
    impostor["pod"]["metadata"]["namespace"] = "elsewhere"
    code, answer = await call(sidecar, "POST", "/create", impostor)
    assert code == 409, answer
    assert f"already belongs to pod default/{first['pod']['metadata']['name']}".encode() in answer
    # /status of the impostor is not told the first pod's JID.
    code, answer = await call(sidecar, "GET", "/status", [impostor["pod"]])
    assert code == 200
    [entry] = json.loads(answer)
    assert entry["JID"] == "" and entry["namespace"] == "elsewhere"
    entry = await poll(
        "the first pod's status",
        lambda: call(sidecar, "GET", "/status", [first["pod"]]),
        lambda result: result[0] == 200 and json.loads(result[1])[0]["JID"] == jid,
    )
    assert (await call(sidecar, "POST", "/delete", first["pod"]))[0] == 200
