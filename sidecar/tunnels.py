"""Wiring the tunnel manager into the sidecar: its config, the pods it should expose,
and how it reaches them.

Which pods: every cached remote pod that is Running with a pod IP and declares TCP
container ports (upstream's rule), or with ``tcp_tunnel.pods = annotated`` only those
annotated ``interlink.io/tcp-tunnel: "true"``. The feeder recomputes that set whenever
the status cache changes and hands it to the manager (a plain value: ``tunnel`` never
sees a pod object).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh
from kubernetes_asyncio import client
from kubernetes_asyncio.stream import WsApiClient

from metrics import Metrics
from sidecar.core.shape import JsonObject
from sidecar.remote.client import remote_call
from sidecar.settings import DialMode, TcpTunnelSettings
from sidecar.status.cache import StatusCache
from tunnel import DesiredTunnel
from tunnel.config import TunnelConfig
from tunnel.dialers import Dial, Stream, dial_direct, portforward_dialer
from tunnel.manager import TunnelManager

logger = logging.getLogger(__name__)

OPT_IN_ANNOTATION = "interlink.io/tcp-tunnel"
AUTO_DIRECT_TIMEOUT_SECONDS = 1.0


class TunnelConfigError(Exception):
    """The tunnel settings cannot be used; names the key (never the key material)."""


def _client_key(settings: TcpTunnelSettings) -> asyncssh.SSHKey:
    try:
        if settings.private_key_file:
            return asyncssh.read_private_key(settings.private_key_file)
        pem = base64.b64decode(settings.gateway_ssh_private_key, validate=True)
        return asyncssh.import_private_key(pem)
    except (OSError, asyncssh.KeyImportError, binascii.Error, ValueError) as exc:
        key = "private_key_file" if settings.private_key_file else "gateway_ssh_private_key"
        # The exception text never contains key material for these errors, but keep to
        # its type to be sure nothing of the key reaches a log.
        raise TunnelConfigError(
            f"tcp_tunnel.{key}: cannot load the private key ({type(exc).__name__})"
        ) from None


def tunnel_config(settings: TcpTunnelSettings) -> TunnelConfig:
    known_hosts = settings.known_hosts_file or None
    if known_hosts is not None and not Path(known_hosts).is_file():
        raise TunnelConfigError(f"tcp_tunnel.known_hosts_file: {known_hosts} does not exist")
    return TunnelConfig(
        host=settings.gateway_host,
        port=settings.gateway_port,
        user=settings.user,
        client_key=_client_key(settings),
        known_hosts=known_hosts,
        insecure=settings.insecure_skip_host_key_check,
        bind_address=settings.bind_address,
        port_policy=settings.port_policy,
        port_range=settings.port_range,
        keepalive_interval=settings.keepalive_interval_seconds,
        keepalive_count=settings.keepalive_count,
        connect_timeout=settings.connect_timeout_seconds,
        login_timeout=settings.connect_timeout_seconds,  # one bound: connect + login
        max_backoff=settings.reconnect_max_backoff_seconds,
        ciphers=settings.ciphers,
    )


def make_dialer(
    settings: TcpTunnelSettings, api_client: client.ApiClient, *, metrics: Metrics | None = None
) -> Dial:
    """The dial function for ``tcp_tunnel.dial_mode``; port-forward websockets are counted
    in ``metrics`` (when given) as remote calls ``connect pods/portforward``."""
    ws_client = WsApiClient(configuration=api_client.configuration)

    async def connect_ws(namespace: str, pod: str, port: int) -> aiohttp.ClientWebSocketResponse:
        core = client.CoreV1Api(ws_client)
        # With _preload_content=False the generated method gives aiohttp's websocket
        # request context (typed as str by the generator): awaiting it connects.
        connect: Any = await core.connect_get_namespaced_pod_portforward(
            pod, namespace, ports=port, _preload_content=False
        )
        ws: aiohttp.ClientWebSocketResponse = await connect
        return ws

    async def open_ws(namespace: str, pod: str, port: int) -> aiohttp.ClientWebSocketResponse:
        if metrics is None:
            return await connect_ws(namespace, pod, port)
        # WsApiClient does not go through the instrumented REST client: timed here, up
        # to the end of the websocket handshake (101 Switching Protocols).
        with remote_call(metrics, "connect", "pods/portforward") as call:
            try:
                ws = await connect_ws(namespace, pod, port)
            except aiohttp.WSServerHandshakeError as exc:
                call.code = str(exc.status)
                raise
            call.code = "101"
        return ws

    through_api = portforward_dialer(open_ws)
    if settings.dial_mode is DialMode.DIRECT:
        return dial_direct
    if settings.dial_mode is DialMode.PORTFORWARD:
        return through_api

    async def auto(target: DesiredTunnel) -> Stream:
        try:
            return await asyncio.wait_for(dial_direct(target), AUTO_DIRECT_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, ConnectionError):
            return await through_api(target)

    return auto


def desired_tunnels(pods: list[JsonObject], *, annotated_only: bool) -> list[DesiredTunnel]:
    result: list[DesiredTunnel] = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if status.get("phase") != "Running" or not status.get("podIP"):
            continue
        if meta.get("deletionTimestamp"):
            continue
        if annotated_only and (meta.get("annotations") or {}).get(OPT_IN_ANNOTATION) != "true":
            continue
        uid = (meta.get("labels") or {}).get("interlink.io/source.pod_uid", "")
        ports = sorted(
            {
                port["containerPort"]
                for container in (pod.get("spec") or {}).get("containers") or []
                for port in container.get("ports") or []
                if port.get("protocol", "TCP") == "TCP"
                and isinstance(port.get("containerPort"), int)
            }
        )
        result.extend(
            DesiredTunnel(
                pod_uid=uid,
                namespace=meta.get("namespace", ""),
                pod_name=meta.get("name", ""),
                pod_ip=status["podIP"],
                port=port,
            )
            for port in ports
        )
    return result


async def feed_forever(cache: StatusCache, manager: TunnelManager, *, annotated_only: bool) -> None:
    """Root task: hand the manager the wanted tunnels whenever the cache changes.

    Runs until cancelled; never returns.
    """
    while True:
        await cache.changed.wait()
        cache.changed.clear()
        manager.set_desired(desired_tunnels(cache.pods(), annotated_only=annotated_only))
