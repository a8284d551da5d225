"""Tunnels through a real OpenSSH gateway to pods of the real control plane."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sidecar.localcluster import LocalCluster
from sidecar.localcluster.cluster import free_port
from tests import podshapes
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar
from tests.fixtures.sshd import SshGateway
from tests.integration.plugin_client import call, poll

pytestmark = [pytest.mark.controlplane, pytest.mark.sshd]


def tunnel_env(sshd: SshGateway, *, mode: str, **extra: str) -> dict[str, str]:
    base = free_port()
    return {
        "TCP_TUNNEL_ENABLED": "true",
        "TCP_TUNNEL_GATEWAY_HOST": sshd.host,
        "TCP_TUNNEL_GATEWAY_PORT": str(sshd.port),
        "TCP_TUNNEL_USER": sshd.user,
        "TCP_TUNNEL_PRIVATE_KEY_FILE": str(sshd.client_key),
        "TCP_TUNNEL_KNOWN_HOSTS_FILE": str(sshd.known_hosts),
        "TCP_TUNNEL_DIAL_MODE": mode,
        "TCP_TUNNEL_PODS": "annotated",
        "TCP_TUNNEL_PORT_POLICY": "range",
        "TCP_TUNNEL_PORT_RANGE": f"{base}-{min(base + 40, 65535)}",
    } | extra


def tunnels(sidecar: SidecarProcess) -> dict[str, Any]:
    with urllib.request.urlopen(sidecar.ops_url + "/tunnels", timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


async def open_tunnels(sidecar: SidecarProcess, pod_uid: str, count: int = 1) -> list[Any]:
    async def mine() -> list[Any]:
        view = await asyncio.to_thread(tunnels, sidecar)
        return [t for t in view["tunnels"] if t["pod_uid"] == pod_uid]

    return await poll(
        "the tunnel to open",
        mine,
        lambda ts: len(ts) == count and all(t["state"] == "open" for t in ts),
    )


@pytest.fixture
async def http_server() -> AsyncIterator[Any]:
    """A local HTTP server standing in for the pod; started on a port given later."""
    runners: list[web.AppRunner] = []

    async def start(port: int, text: str) -> None:
        async def hello(_request: web.Request) -> web.Response:
            return web.Response(text=text)

        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)

    yield start
    for runner in runners:
        await runner.cleanup()


def tunnelled_pod(port: int) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    spec = {"containers": [podshapes.container("web", ports=[{"containerPort": port}])]}
    return podshapes.body(
        podshapes.pod(uid, f"web-{uid[:8]}", spec, annotations={"interlink.io/tcp-tunnel": "true"})
    )


async def get(port: int) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as r:
        assert r.status == 200
        return await r.text()


async def running(sidecar: SidecarProcess, body: dict[str, Any]) -> None:
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer

    async def state() -> list[str]:
        _, raw = await call(sidecar, "GET", "/status", [body["pod"]])
        return [next(iter(c["state"])) for c in json.loads(raw)[0]["containers"]]

    await poll("the pod to run", state, lambda s: s == ["running"])


async def test_portforward_mode_end_to_end_and_closed_on_delete(
    start_sidecar: StartSidecar, sshd: SshGateway, control_plane: LocalCluster, http_server: Any
) -> None:
    await http_server(control_plane.portforward_target_port, "hello through the API server")
    sidecar = start_sidecar(env=tunnel_env(sshd, mode="portforward"))
    body = tunnelled_pod(8080)
    await running(sidecar, body)
    [tunnel] = await open_tunnels(sidecar, body["pod"]["metadata"]["uid"])
    assert await get(tunnel["gateway_port"]) == "hello through the API server"

    code, _ = await call(sidecar, "POST", "/delete", body["pod"])
    assert code == 200
    await open_tunnels(sidecar, body["pod"]["metadata"]["uid"], count=0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(tunnel["gateway_port"])


async def test_direct_mode_end_to_end(
    start_sidecar: StartSidecar, sshd: SshGateway, control_plane: LocalCluster, http_server: Any
) -> None:
    port = free_port()
    await http_server(port, "hello from the pod IP")
    sidecar = start_sidecar(env=tunnel_env(sshd, mode="direct"))
    body = tunnelled_pod(port)
    await running(sidecar, body)
    uid = body["pod"]["metadata"]["uid"]
    remote = control_plane.request(
        "GET",
        f"/api/v1/namespaces/offloading-default/pods?labelSelector=interlink.io/source.pod_uid={uid}",
    )["items"][0]
    # The pod IP of a kwok pod is not routable here: 127.0.0.1 stands in for it.
    control_plane.request(
        "PATCH",
        f"/api/v1/namespaces/offloading-default/pods/{remote['metadata']['name']}/status",
        {"status": {"podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}},
    )
    [tunnel] = await open_tunnels(sidecar, uid)

    async def answer() -> str:
        try:
            return await get(tunnel["gateway_port"])
        except (aiohttp.ClientError, AssertionError):
            return ""

    assert await poll("the direct dial", answer, lambda text: text != "") == "hello from the pod IP"


async def test_wrong_host_key_is_refused_and_the_key_never_logged(
    start_sidecar: StartSidecar, sshd: SshGateway, tmp_path: Any
) -> None:
    import asyncssh

    wrong = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd.host}]:{sshd.port} {wrong}")
    sidecar = start_sidecar(
        wait=False,
        env=tunnel_env(
            sshd, mode="portforward", TCP_TUNNEL_KNOWN_HOSTS_FILE=str(known), LOG_LEVEL="DEBUG"
        ),
    )
    sidecar.wait_until_ready(probe="/healthz")  # /readyz waits for the gateway: never

    async def log() -> str:
        return sidecar.log()

    text = await poll("the refusal to be logged", log, lambda t: "host key not trusted" in t)
    assert tunnels(sidecar)["gateway_connected"] is False
    key_lines = [
        line
        for line in sshd.client_key.read_text().splitlines()
        if line and not line.startswith("-----")
    ]
    assert key_lines
    assert not any(line in text for line in key_lines)
