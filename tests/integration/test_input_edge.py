"""Issue 11, findings 2 and 3, against the real sidecar process and control plane: caller
mistakes the remote API server would refuse are answered 422 before anything is
journalled or sent; log options at Kubernetes' bounds work; a client that leaves in the
middle of its body is neither an ERROR nor a 500."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.api import wire
from sidecar.core import naming
from tests import podshapes
from tests.deadlines import scaled
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar
from tests.integration.plugin_client import call, log_request, metric_value, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane


def journal(tmp_path: Path) -> Path:
    return tmp_path / "edge-state" / "pending-deletes.json"


def journal_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def ours(cluster: LocalCluster) -> list[dict[str, Any]]:
    """The metadata of every remote pod, ConfigMap and Secret labelled as ours."""
    selector = f"{naming.OFFLOADING_LABEL}={naming.OFFLOADING_VALUE}"
    return [
        item["metadata"]
        for plural in ("pods", "configmaps", "secrets")
        for item in cluster.request("GET", f"/api/v1/{plural}?labelSelector={selector}")["items"]
    ]


@pytest.fixture
def sidecar(start_sidecar: StartSidecar, tmp_path: Path) -> SidecarProcess:
    return start_sidecar(state_dir=tmp_path / "edge-state")


BAD_REFS = [
    ({"uid": "not a label value"}, "pod.metadata.uid"),
    ({"uid": "x" * 10_000_000}, "pod.metadata.uid"),
    ({"uid": "a" * 64}, "pod.metadata.uid"),
    ({"namespace": "."}, "pod.metadata.namespace"),
    ({"namespace": ".."}, "pod.metadata.namespace"),
    ({"name": "../../etc"}, "pod.metadata.name"),
]


async def test_a_bad_delete_is_refused_and_journals_nothing(
    sidecar: SidecarProcess, tmp_path: Path
) -> None:
    """Finding 2: a 10 MB uid was accepted (200), journalled and retried for ever."""
    # One good delete first, so that the journal exists and has content to compare.
    good = podshapes.pod(str(uuid.uuid4()), "gone", {"containers": [podshapes.container("c")]})
    assert (await call(sidecar, "POST", "/delete", good))[0] == 200
    before = journal_bytes(journal(tmp_path))
    assert before
    for meta, field in BAD_REFS:
        pod = podshapes.pod(str(uuid.uuid4()), "bad", {"containers": [podshapes.container("c")]})
        pod["metadata"] |= meta
        started = time.monotonic()
        code, answer = await call(sidecar, "POST", "/delete", pod)
        assert code == 422, answer
        assert answer.decode().startswith(f"{field}: ")
        assert len(answer) < 500, "the value is never echoed whole"
        assert time.monotonic() - started < 10
        assert journal_bytes(journal(tmp_path)) == before, f"{field} journalled"
    assert "x" * 1000 not in sidecar.log(), "the uid never reaches the log"


async def test_a_bad_create_sends_nothing_remotely(
    sidecar: SidecarProcess, control_plane: LocalCluster
) -> None:
    """Uids that are not label values came back as 502 (the remote server refused the
    label selector); namespaces ``.``/``..`` too."""
    before = ours(control_plane)
    for meta, field in [*BAD_REFS, ({"uid": "bad,uid=x"}, "pod.metadata.uid")]:
        body = podshapes.body(
            podshapes.pod(str(uuid.uuid4()), "bad", {"containers": [podshapes.container("c")]})
        )
        body["pod"]["metadata"] |= meta
        code, answer = await call(sidecar, "POST", "/create", body)
        assert code == 422, answer
        assert answer.decode().startswith(f"{field}: ")
    assert ours(control_plane) == before
    assert metric_value(sidecar, 'sidecar_offload_creates_total{outcome="failed"}') == 0


@pytest.fixture(scope="module")
def running_pod(sidecar_module: SidecarProcess) -> Iterator[dict[str, Any]]:
    """A running pod of the module's sidecar, deleted at the end."""
    uid = str(uuid.uuid4())
    body = podshapes.body(
        podshapes.pod(uid, f"edge-{uid[:8]}", {"containers": [podshapes.container("main")]})
    )
    asyncio.run(_run(sidecar_module, body))
    yield body["pod"]
    assert asyncio.run(call(sidecar_module, "POST", "/delete", body["pod"]))[0] == 200


async def _run(sidecar: SidecarProcess, body: dict[str, Any]) -> None:
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer

    async def states() -> list[str]:
        _, raw = await call(sidecar, "GET", "/status", [body["pod"]])
        return [next(iter(c["state"])) for c in json.loads(raw)[0]["containers"]]

    await poll("the pod to run", states, lambda s: s == ["running"])


@pytest.mark.parametrize(
    ("opts", "code"),
    [
        ({"Tail": 10**20}, 422),
        ({"Bytes": 2**63}, 422),
        ({"SinceSeconds": wire.MAX_SINCE_SECONDS + 1}, 422),
        ({"SinceTime": "9999-12-31T23:59:59-01:00"}, 422),
        ({"Tail": wire.MAX_INT64}, 200),
        ({"Bytes": wire.MAX_INT64}, 200),
        ({"SinceSeconds": wire.MAX_SINCE_SECONDS}, 200),
        ({"SinceTime": "9999-12-31T23:59:59Z"}, 200),
        ({"SinceTime": "0002-01-01T00:00:00+05:00"}, 200),
    ],
)
async def test_log_options_at_the_bounds(
    sidecar_module: SidecarProcess, running_pod: Any, opts: dict[str, Any], code: int
) -> None:
    """A Tail of 10^20 came back as 502 and a far-future SinceTime as a 500
    (OverflowError); the largest values Kubernetes takes work."""
    request = log_request(running_pod, "main", **opts)
    got, answer = await call(sidecar_module, "GET", "/getLogs", request)
    assert got == code, answer
    if code == 422:
        assert answer.decode().startswith("Opts.")


async def test_logs_of_a_pod_with_no_node_are_empty(sidecar_module: SidecarProcess) -> None:
    """The remote API server answers 204 No Content for the log of a pod not scheduled
    yet: an empty log (200), not a failure of the remote side (it was a 502)."""
    uid = str(uuid.uuid4())
    spec = {
        "containers": [podshapes.container("main")],
        "nodeSelector": {"example.org/no-such-node": "true"},
    }
    body = podshapes.body(podshapes.pod(uid, f"stuck-{uid[:8]}", spec))
    code, answer = await call(sidecar_module, "POST", "/create", body)
    assert code == 200, answer
    try:
        for follow in (False, True):
            request = log_request(body["pod"], "main", Follow=follow)
            code, answer = await call(sidecar_module, "GET", "/getLogs", request)
            assert (code, answer) == (200, b"")
    finally:
        assert (await call(sidecar_module, "POST", "/delete", body["pod"]))[0] == 200


async def test_deep_json_is_a_400(sidecar: SidecarProcess) -> None:
    """It was a RecursionError (500 with a traceback)."""
    host, port = sidecar.tcp_url.removeprefix("http://").split(":")
    body = b"[" * 100_000 + b"]" * 100_000
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=scaled(30))
    writer.close()
    await writer.wait_closed()  # else the loop may close first: an unclosed socket
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"\r\n\r\nrequest body nests deeper than 64 levels: refused\n")
    assert "Traceback" not in sidecar.log()


async def test_a_client_gone_mid_body_is_not_an_error(sidecar: SidecarProcess) -> None:
    """It was logged at ERROR with a traceback and counted as a 500."""
    host, port = sidecar.tcp_url.removeprefix("http://").split(":")
    for path in ("/create", "/delete", "/status", "/getLogs"):
        method = "GET" if path in ("/status", "/getLogs") else "POST"
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n".encode()
                + b'{"pod": {"metadata": {"uid": "'
            )
            # A reset before the server read the request would drop it unseen: wait
            # until its handler runs (reading the body), then reset.
            await poll(
                f"{path}: the handler reading the body",
                lambda: asyncio.to_thread(metric_value, sidecar, "sidecar_api_requests_in_flight"),
                lambda value: value == 1,
            )
            # Linger 0: close sends a reset, as a client killed mid-send.
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

        series = f'sidecar_api_requests_total{{code="499",method="{method}",route="{path}"}}'
        await poll(
            f"{path}: the request counted as 499",
            lambda series=series: asyncio.to_thread(metric_value, sidecar, series),
            lambda value: value == 1,
        )
        assert metric_value(sidecar, series.replace('"499"', '"500"')) == 0
    log = sidecar.log()
    assert "Traceback" not in log
    assert " ERROR " not in log
