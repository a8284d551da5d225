"""An HTTP hop between one interLink API server and the sidecar that can hold a ``/create``
or lose a ``/delete``.

Why it exists: interLink sends a pod's ``/create`` and ``/delete`` from separate
goroutines, so a delete can reach the plugin *before* its create. Through the real chain
that order is forced here, not hoped for: a test holds the ``/create`` of one pod (by
local pod name), learns that it has arrived, deletes the pod with kubectl (the
virtual kubelet sends ``/delete``, which passes through at once), then releases the
create, which now reaches the sidecar after its delete.

A lost delete (``lose_delete``) is answered 502 without reaching the sidecar, as when the
sidecar was down or the network failed: interLink never sends it again, and the remote
pod becomes an orphan for the sidecar to find. Everything else is passed through unchanged, streamed both ways (``/getLogs`` follows
included). It runs in its own thread and event loop, on 127.0.0.1, so the synchronous
end-to-end tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.fixtures.threaded_server import ThreadedServer
from tests.localcluster.cluster import free_port

MAX_HOLD_SECONDS = 60.0
"""A forgotten hold never outlasts this (interLink's client gives up after 90 s)."""
_PASSED_HEADERS = ("Content-Type", "InterLink-Http-Session")


def _name(body: bytes, *path: str) -> str:
    """``.name`` under ``path`` in a JSON body ("" when it has none)."""
    try:
        node = json.loads(body)
        for key in path:
            node = node[key]
        return str(node["name"])
    except (ValueError, KeyError, TypeError):
        return ""


@dataclass
class CreateHold:
    pod_name: str
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def wait_arrived(self, timeout: float) -> None:
        if not self.arrived.wait(timeout):
            raise AssertionError(f"no /create of pod {self.pod_name} arrived in {timeout} s")

    def release(self) -> None:
        self.released.set()


class CreateGate:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        """The sidecar's TCP URL."""
        self.port = 0
        self._holds: dict[str, CreateHold] = {}
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._server: ThreadedServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/create":
            await self._maybe_hold(body)
        if request.path == "/delete" and _name(body, "metadata") in self._lost:
            return web.Response(status=502, text="lost on the way by the test's gate\n")
        if self._session is None:  # made on the server's own loop, on first use
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        headers = {k: request.headers[k] for k in _PASSED_HEADERS if k in request.headers}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            if "Content-Type" in upstream.headers:
                response.headers["Content-Type"] = upstream.headers["Content-Type"]
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response

    async def _maybe_hold(self, body: bytes) -> None:
        with self._lock:
            hold = self._holds.get(_name(body, "pod", "metadata"))
        if hold is not None:
            hold.arrived.set()
            await asyncio.to_thread(hold.released.wait, MAX_HOLD_SECONDS)

    def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._server = ThreadedServer(
            app, free_port(), name="create-gate", on_cleanup=self._close_session
        )
        self.port = self._server.port
        self._server.start()

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()

    def stop(self) -> None:
        with self._lock:
            for hold in self._holds.values():
                hold.release()
        if self._server is not None:
            self._server.stop()

    def lose_delete(self, pod_name: str) -> None:
        """Every later ``/delete`` of local pod ``pod_name`` is lost (answered 502)."""
        self._lost.add(pod_name)

    @contextlib.contextmanager
    def hold(self, pod_name: str) -> Iterator[CreateHold]:
        """Hold the ``/create`` of local pod ``pod_name`` until ``release`` (or the end of
        the ``with`` block)."""
        hold = CreateHold(pod_name)
        with self._lock:
            self._holds[pod_name] = hold
        try:
            yield hold
        finally:
            hold.release()
            with self._lock:
                self._holds.pop(pod_name, None)
