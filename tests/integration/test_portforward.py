"""A port-forward through the API server reaches a local TCP server via kwok.

This is the path the tunnels will use to dial remote pods from outside the remote
cluster's network: kubernetes_asyncio's WsApiClient speaks the ``v4.channel.k8s.io``
websocket protocol to ``pods/<name>/portforward``; the API server forwards it to the
node's kubelet (kwok), whose ClusterPortForward sends it to 127.0.0.1:<target port>.

Protocol facts: every binary frame starts with a channel byte; for the i-th requested
port, channel 2i carries data and 2i+1 errors; the first frame on each channel is the
port number as 2 little-endian bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.stream import WsApiClient

from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

POD_PORT = 8080


@pytest.fixture
async def echo_server(control_plane: LocalCluster) -> AsyncIterator[asyncio.Server]:
    """An echo server on the port kwok forwards to; closes its connections at the end
    (kwok may keep its side open after the port-forward stream ends)."""
    connections: dict[asyncio.Task[object], asyncio.StreamWriter] = {}

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections[task] = writer
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    server = await asyncio.start_server(echo, "127.0.0.1", control_plane.portforward_target_port)
    async with server:
        yield server
        for task, writer in connections.items():
            task.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await asyncio.gather(*connections, return_exceptions=True)


async def receive(ws: aiohttp.ClientWebSocketResponse, channel: int) -> bytes:
    async with asyncio.timeout(15):
        while True:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.BINARY, message
            if message.data[0] == channel:
                return bytes(message.data[1:])


async def test_portforward_reaches_a_local_echo_server(
    control_plane: LocalCluster, echo_server: asyncio.Server
) -> None:
    configuration = client.Configuration()
    await config.load_kube_config(str(control_plane.kubeconfig), client_configuration=configuration)
    name = f"pf-{uuid.uuid4().hex[:8]}"
    async with client.ApiClient(configuration) as api_client:
        core = client.CoreV1Api(api_client)
        await core.create_namespaced_pod(
            "default",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx", "ports": [{"containerPort": POD_PORT}]}
                    ]
                },
            },
        )
        async with asyncio.timeout(30):
            while (await core.read_namespaced_pod(name, "default")).status.phase != "Running":
                await asyncio.sleep(0.2)  # polling a condition with a deadline

    async with WsApiClient(configuration) as ws_client:
        core = client.CoreV1Api(ws_client)
        connect = await core.connect_get_namespaced_pod_portforward(
            name, "default", ports=POD_PORT, _preload_content=False
        )
        async with connect as ws:
            assert struct.unpack("<H", await receive(ws, 0))[0] == POD_PORT
            await ws.send_bytes(b"\x00hello through the API server\n")
            echoed = b""
            while len(echoed) < len(b"hello through the API server\n"):
                echoed += await receive(ws, 0)
            assert echoed == b"hello through the API server\n"
