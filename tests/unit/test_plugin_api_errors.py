"""The plugin API's answers to what goes wrong, through the real aiohttp app and its
middleware (the offloader and the remote cluster are stand-ins): a remote refusal of
the caller's values is a 422, a client gone mid-body is counted as 499 and is not an
error, a body over the limit is a 413, and every error is one line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from metrics import Metrics, make_metrics
from sidecar.api import routes
from sidecar.api.server import make_plugin_app
from sidecar.remote.errors import RemoteError
from sidecar.remote.health import RemoteHealth
from sidecar.settings import load
from sidecar.status.cache import StatusCache

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]
UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
SETTINGS = load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock"})


class FakeRemote:
    """The remote API server refuses every read with ``error``."""

    def __init__(self, error: RemoteError) -> None:
        self.error = error

    async def find_pod(self, namespace: str, uid: str) -> Any:
        raise self.error


class FakeJournal:
    def deleted_at(self, uid: str) -> float | None:
        return None


class FakeOffloader:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.deleted: list[Any] = []
        self.journal = FakeJournal()

    async def create(self, request: Any) -> str:
        raise self.error or AssertionError("no create expected")

    async def delete(self, ref: Any) -> bool:
        self.deleted.append(ref)
        return True

    def creating_since(self, uid: str) -> float | None:
        return None


def app(metrics: Metrics, *, remote_error: RemoteError | None = None, offloader: Any = None) -> Any:
    cache = StatusCache()
    cache.confirmed = True
    health = RemoteHealth()
    health.record(up=True, detail="ok")
    return make_plugin_app(
        remote=cast(Any, FakeRemote(remote_error or RemoteError(0, "Unreachable", "down"))),
        offloader=cast(Any, offloader or FakeOffloader()),
        cache=cache,
        health=health,
        offloading=SETTINGS.offloading,
        metrics=metrics,
        log_requests=False,
    )


def counted(metrics: Metrics, route: str, method: str, code: str) -> float:
    value = metrics.registry.get_sample_value(
        "sidecar_api_requests_total", {"route": route, "method": method, "code": code}
    )
    return value or 0.0


def log_body(**fields: Any) -> dict[str, Any]:
    return {
        "Namespace": "default",
        "PodUID": UID,
        "PodName": "p",
        "ContainerName": "main",
        "Opts": {},
    } | fields


@pytest.mark.parametrize(
    ("remote_status", "answer"), [(400, 422), (422, 422), (404, 404), (403, 502), (0, 503)]
)
async def test_remote_refusals_of_the_callers_values_are_422(
    aiohttp_client: ClientFactory, remote_status: int, answer: int
) -> None:
    message = (
        'pods "p" is forbidden: User "sidecar" cannot get resource "pods/log" in API group ""'
        if remote_status == 403  # a read is refused by RBAC only (admission never sees it)
        else 'unable to parse requirement: "x"'
    )
    error = RemoteError(remote_status, "BadRequest", message)
    client = await aiohttp_client(
        app(make_metrics(CollectorRegistry(), version="t"), remote_error=error)
    )
    response = await client.get("/getLogs", json=log_body())
    text = await response.text()
    assert response.status == answer, text
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "remote API server" in text


async def test_a_wrong_type_in_a_status_pod_is_a_422(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app(make_metrics(CollectorRegistry(), version="t")))
    pod = {
        "metadata": {"uid": UID, "name": "p", "namespace": "default", "annotations": "x"},
        "spec": {"containers": [{"name": "main"}]},
    }
    response = await client.get("/status", json=[pod])
    assert response.status == 422
    assert await response.text() == "[0].metadata.annotations: expected an object, got a string\n"


async def test_a_bad_uid_delete_is_refused_before_the_offloader(
    aiohttp_client: ClientFactory,
) -> None:
    offloader = FakeOffloader()
    client = await aiohttp_client(
        app(make_metrics(CollectorRegistry(), version="t"), offloader=offloader)
    )
    pod = {"metadata": {"uid": "x" * 10_000_000, "name": "p", "namespace": "default"}}
    response = await client.post("/delete", data=io.BytesIO(json.dumps(pod).encode()))
    assert response.status == 422
    assert (await response.text()).startswith("pod.metadata.uid: ")
    assert offloader.deleted == [], "nothing journalled"


async def test_error_lines_are_one_line_of_valid_utf8(aiohttp_client: ClientFactory) -> None:
    error = RemoteError(400, "BadRequest", "line one\nline two \udcff" + "x" * 5000)
    client = await aiohttp_client(
        app(make_metrics(CollectorRegistry(), version="t"), remote_error=error)
    )
    response = await client.get("/getLogs", json=log_body())
    raw = await response.read()
    assert response.status == 422
    text = raw.decode("utf-8")  # strict: no lone surrogate reached the wire
    assert text.count("\n") == 1
    assert len(text) <= routes.MAX_ERROR_CHARS + 1


async def test_a_body_over_the_limit_is_a_413_before_it_is_read(
    aiohttp_client: ClientFactory,
) -> None:
    client = await aiohttp_client(app(make_metrics(CollectorRegistry(), version="t")))
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {routes.MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        + b"{"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    assert head.startswith(b"HTTP/1.1 413 ")
    writer.close()
    await writer.wait_closed()


async def test_deep_json_is_a_400_naming_the_limit(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app(make_metrics(CollectorRegistry(), version="t")))
    response = await client.post("/create", data=b"[" * 5000 + b"]" * 5000)
    assert response.status == 400
    assert await response.text() == "request body nests deeper than 64 levels: refused\n"


async def test_a_client_gone_mid_body_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """Finding: a client that disconnected while sending its body was logged at ERROR
    with a traceback and counted as a 500. Served as the sidecar serves it (an
    AppRunner without handler cancellation; aiohttp's test server cancels handlers)."""
    caplog.set_level(logging.DEBUG)
    metrics = make_metrics(CollectorRegistry(), version="t")
    runner = web.AppRunner(app(metrics), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        for path in ("/create", "/delete", "/status", "/getLogs"):
            method = "GET" if path in ("/status", "/getLogs") else "POST"
            _, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n".encode()
                + b'{"pod": {"metadata": '
            )
            await writer.drain()
            # A reset before the server read the request would drop it unseen: wait
            # until its handler runs (reading the body), then reset.
            deadline = time.monotonic() + 5
            while metrics.registry.get_sample_value("sidecar_api_requests_in_flight") != 1:
                assert time.monotonic() < deadline, f"{path}: the handler never started"
                await asyncio.sleep(0.01)  # polling a condition with a deadline
            writer.transport.abort()  # a reset, as a client killed mid-send
            deadline = time.monotonic() + 5
            while counted(metrics, path, method, "499") < 1:
                assert time.monotonic() < deadline, f"{path}: no 499 counted"
                await asyncio.sleep(0.02)  # polling a condition with a deadline
            assert counted(metrics, path, method, "500") == 0
    finally:
        await runner.cleanup()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records)


async def test_routing_errors_are_one_line(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app(make_metrics(CollectorRegistry(), version="t")))
    response = await client.put("/create", data=b"{}")
    assert (response.status, await response.text()) == (405, "Method Not Allowed\n")
    response = await client.get("/nothing-here")
    assert (response.status, await response.text()) == (404, "Not Found\n")
