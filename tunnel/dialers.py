"""Dialling the remote pod for one connection that arrived on the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from tunnel.desired import DesiredTunnel
from tunnel.portforward import WebSocketStream
from tunnel.pump import CHUNK, Reader, Writer

Stream = tuple[Reader, Writer]
Dial = Callable[[DesiredTunnel], Awaitable[Stream]]
OpenWebSocket = Callable[[str, str, int], Awaitable[aiohttp.ClientWebSocketResponse]]

DIRECT_TIMEOUT_SECONDS = 5.0


async def dial_direct(target: DesiredTunnel) -> Stream:
    """TCP to the pod IP: needs the remote cluster's pod network."""
    if not target.pod_ip:
        raise ConnectionError(f"pod {target.namespace}/{target.pod_name} has no IP yet")
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(target.pod_ip, target.port, limit=CHUNK),
        DIRECT_TIMEOUT_SECONDS,
    )
    return reader, writer


def portforward_dialer(open_ws: OpenWebSocket) -> Dial:
    """Through the remote API server: ``open_ws(namespace, pod, port)`` opens the socket."""

    async def dial(target: DesiredTunnel) -> Stream:
        ws = await open_ws(target.namespace, target.pod_name, target.port)
        stream = WebSocketStream(ws)
        return stream, stream

    return dial
