"""Tunnels through a real OpenSSH gateway to pods of the real control plane."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests import podshapes
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar
from tests.fixtures.sshd import SshdServer, SshGateway, tunnel_env
from tests.http_client import client_session
from tests.integration.plugin_client import call, metric_value, poll
from tests.localcluster import LocalCluster
from tests.localcluster.cluster import free_port

pytestmark = [pytest.mark.controlplane, pytest.mark.sshd]


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


def tunnelled_pod(*ports: int) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    declared = [{"containerPort": port} for port in ports]
    spec = {"containers": [podshapes.container("web", ports=declared)]}
    return podshapes.body(
        podshapes.pod(uid, f"web-{uid[:8]}", spec, annotations={"interlink.io/tcp-tunnel": "true"})
    )


async def get(port: int) -> str:
    async with client_session() as session, session.get(f"http://127.0.0.1:{port}/") as r:
        assert r.status == 200
        return await r.text()


async def running(sidecar: SidecarProcess, body: dict[str, Any]) -> None:
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer

    async def state() -> list[str]:
        _, raw = await call(sidecar, "GET", "/status", [body["pod"]])
        return [next(iter(c["state"])) for c in json.loads(raw)[0]["containers"]]

    await poll("the pod to run", state, lambda s: s == ["running"])


async def test_portforward_mode_end_to_end_and_port_reused_after_delete(
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

    # The released gateway port is the lowest free one of the range again: the next pod
    # gets it, and it works.
    successor = tunnelled_pod(8080)
    await running(sidecar, successor)
    [reused] = await open_tunnels(sidecar, successor["pod"]["metadata"]["uid"])
    assert reused["gateway_port"] == tunnel["gateway_port"]
    assert await get(reused["gateway_port"]) == "hello through the API server"


def pretend_pod_ip(control_plane: LocalCluster, body: dict[str, Any], ip: str) -> None:
    """The pod IP of a kwok pod is not routable here: a loopback address stands in."""
    uid = body["pod"]["metadata"]["uid"]
    remote = control_plane.request(
        "GET",
        f"/api/v1/namespaces/offloading-default/pods?labelSelector=interlink.io/source.pod_uid={uid}",
    )["items"][0]
    control_plane.request(
        "PATCH",
        f"/api/v1/namespaces/offloading-default/pods/{remote['metadata']['name']}/status",
        {"status": {"podIP": ip, "podIPs": [{"ip": ip}]}},
    )


async def answers(gateway_port: int, expected: str) -> None:
    """Poll until the forward answers with ``expected`` (the pod IP change propagates)."""

    async def answer() -> str:
        try:
            return await get(gateway_port)
        except (aiohttp.ClientError, AssertionError):
            return ""

    assert await poll(f"port {gateway_port} to answer", answer, lambda t: t != "") == expected


async def test_direct_mode_end_to_end(
    start_sidecar: StartSidecar, sshd: SshGateway, control_plane: LocalCluster, http_server: Any
) -> None:
    port = free_port()
    await http_server(port, "hello from the pod IP")
    sidecar = start_sidecar(env=tunnel_env(sshd, mode="direct"))
    body = tunnelled_pod(port)
    await running(sidecar, body)
    pretend_pod_ip(control_plane, body, "127.0.0.1")
    [tunnel] = await open_tunnels(sidecar, body["pod"]["metadata"]["uid"])
    await answers(tunnel["gateway_port"], "hello from the pod IP")


# Pods "live" on 127.0.0.2 when the gateway's forwards use the same port numbers on
# 127.0.0.1 (policy `container`): Linux routes all of 127/8 to the loopback interface.
POD_IP = "127.0.0.2"


async def test_two_ports_two_forwards_and_one_port_two_pods_do_not_collide(
    start_sidecar: StartSidecar, sshd: SshGateway, control_plane: LocalCluster
) -> None:
    first, second = free_port(), free_port()
    servers = [
        await asyncio.start_server(text_server(f"port {port}"), POD_IP, port)
        for port in (first, second)
    ]
    env = tunnel_env(sshd, mode="direct", TCP_TUNNEL_PORT_POLICY="container")
    sidecar = start_sidecar(env=env)
    owner, latecomer = tunnelled_pod(first, second), tunnelled_pod(first)
    await running(sidecar, owner)
    pretend_pod_ip(control_plane, owner, POD_IP)
    opened = await open_tunnels(sidecar, owner["pod"]["metadata"]["uid"], count=2)
    assert sorted(t["gateway_port"] for t in opened) == sorted([first, second])
    for port in (first, second):
        assert await raw_answer(port) == f"port {port}"

    await running(sidecar, latecomer)
    uid = latecomer["pod"]["metadata"]["uid"]

    async def latecomer_tunnels() -> list[Any]:
        view = await asyncio.to_thread(tunnels, sidecar)
        return [t for t in view["tunnels"] if t["pod_uid"] == uid]

    [refused] = await poll("the collision", latecomer_tunnels, lambda ts: len(ts) == 1)
    assert refused["state"] == "error"
    assert owner["pod"]["metadata"]["name"] in refused["reason"]
    assert str(first) in refused["reason"]
    assert metric_value(sidecar, 'sidecar_tunnel_tunnels{state="error"}') == 1
    assert f"gateway port {first}" in sidecar.log()
    assert await raw_answer(first) == f"port {first}"  # the owner's forward is untouched
    for server in servers:
        server.close()


def text_server(text: str) -> Any:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(text.encode())
        writer.close()

    return serve


async def raw_answer(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return (await asyncio.wait_for(reader.read(), 10)).decode()
    finally:
        writer.close()


def sockets_to(pid: int, ports: set[int]) -> int:
    """How many of process ``pid``'s TCP sockets are connected to one of ``ports`` on
    127.0.0.1 (from /proc: its fds' socket inodes, matched in /proc/<pid>/net/tcp).

    The tunnel's own sockets (to the gateway, to the pods) and nothing else: a plain fd
    count also moves with the remote API client's connection pool, which may open one
    more keep-alive connection on a busy machine without anything leaking (a full run
    with both cores loaded failed that way)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                # Any state: a leaked socket often sits in CLOSE_WAIT (peer gone, never
                # closed here); only a socket this process still holds has an inode.
                if fields[9] in inodes and remote_port in ports:
                    count += 1
    return count


async def test_gateway_restart_restores_forwards_without_leaks(
    start_sidecar: StartSidecar, own_sshd: SshdServer, control_plane: LocalCluster
) -> None:
    first, second = free_port(), free_port()
    held: list[asyncio.StreamWriter] = []
    held_closed = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # EOF: the sidecar closed its side of the pod connection
        held_closed.set()
        writer.close()

    servers = [
        await asyncio.start_server(text_server("still here"), POD_IP, first),
        await asyncio.start_server(hold, POD_IP, second),
    ]
    sidecar = start_sidecar(env=tunnel_env(own_sshd.gateway, mode="direct"))
    body = tunnelled_pod(first, second)
    await running(sidecar, body)
    pretend_pod_ip(control_plane, body, POD_IP)
    uid = body["pod"]["metadata"]["uid"]
    ports = {t["pod_port"]: t["gateway_port"] for t in await open_tunnels(sidecar, uid, 2)}
    assert await raw_answer(ports[first]) == "still here"
    await poll(
        "connections to finish",
        lambda: asyncio.to_thread(metric_value, sidecar, "sidecar_tunnel_active_connections"),
        lambda n: n == 0,
    )
    tunnel_ports = {first, second, own_sshd.gateway.port}
    sockets = sockets_to(sidecar.process.pid, tunnel_ports)
    assert sockets == 1, "the gateway connection, and no pod connection left"

    # A connection in flight when the gateway dies must not outlive it.
    _, client = await asyncio.open_connection("127.0.0.1", ports[second])
    await poll("the held connection", lambda: asyncio.sleep(0, len(held)), lambda n: n == 1)
    own_sshd.kill()
    await asyncio.wait_for(held_closed.wait(), 30)
    client.close()
    await poll(
        "the sidecar to notice",
        lambda: asyncio.to_thread(tunnels, sidecar),
        lambda view: view["gateway_connected"] is False,
    )

    own_sshd.start()
    back = time.monotonic()
    for pod_port, gateway_port in ports.items():

        async def works(port: int = gateway_port) -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True

        await poll(f"forward {pod_port} back", works, bool, timeout=back + 5 - time.monotonic())
    assert await raw_answer(ports[first]) == "still here"
    assert metric_value(sidecar, "sidecar_tunnel_ssh_reconnects_total") >= 1
    await poll(
        "the tunnel's sockets back to the baseline (one gateway connection)",
        lambda: asyncio.sleep(0, sockets_to(sidecar.process.pid, tunnel_ports)),
        lambda n: n == sockets,
    )
    assert metric_value(sidecar, "sidecar_tunnel_active_connections") == 0
    for server in servers:
        server.close()


MB = 1024 * 1024


def payload(seed: int, size: int) -> Any:
    """``size`` pseudo-random bytes in 1 MiB chunks, reproducible from ``seed``."""
    rng = random.Random(seed)
    for _ in range(size // MB):
        yield rng.randbytes(MB)


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, seed: int, size: int
) -> tuple[str, str, int]:
    """Send ``size`` bytes of ``payload(seed, ...)`` while reading until EOF; returns
    (SHA-256 of what was sent, SHA-256 of what came back, bytes that came back)."""

    async def upload() -> str:
        digest = hashlib.sha256()
        for chunk in payload(seed, size):
            digest.update(chunk)
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
        return digest.hexdigest()

    async def download() -> tuple[str, int]:
        digest, count = hashlib.sha256(), 0
        while data := await reader.read(MB):
            digest.update(data)
            count += len(data)
        return digest.hexdigest(), count

    sent, (got, count) = await asyncio.wait_for(asyncio.gather(upload(), download()), 100)
    writer.close()
    return sent, got, count


async def test_200_concurrent_connections_and_100_mb_each_way(
    start_sidecar: StartSidecar, sshd: SshGateway, control_plane: LocalCluster
) -> None:
    echo_port, bulk_port = free_port(), free_port()
    size = 100 * MB
    # Set by the pod once it has read everything up to EOF: the client's last drain
    # only means the bytes left the client, not that the pod has them.
    received_by_pod: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    async def bulk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send() -> None:
            for chunk in payload(2, size):
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()

        digest = hashlib.sha256()
        sending = asyncio.create_task(send())
        while data := await reader.read(MB):
            digest.update(data)
        received_by_pod.set_result(digest.hexdigest())
        await sending
        writer.close()

    servers = [
        await asyncio.start_server(echo, POD_IP, echo_port),
        await asyncio.start_server(bulk, POD_IP, bulk_port),
    ]
    sidecar = start_sidecar(env=tunnel_env(sshd, mode="direct"))
    body = tunnelled_pod(echo_port, bulk_port)
    await running(sidecar, body)
    pretend_pod_ip(control_plane, body, POD_IP)
    uid = body["pod"]["metadata"]["uid"]
    ports = {t["pod_port"]: t["gateway_port"] for t in await open_tunnels(sidecar, uid, 2)}
    await poll("the pod IP", lambda: raw_line(ports[echo_port], "ping"), lambda a: a == "ping\n")

    answers = await asyncio.gather(*(raw_line(ports[echo_port], f"c{i}") for i in range(200)))
    assert answers == [f"c{i}\n" for i in range(200)]

    reader, writer = await asyncio.open_connection("127.0.0.1", ports[bulk_port])
    sent, got, count = await exchange(reader, writer, seed=1, size=size)
    assert count == size
    assert got == hashlib.sha256(b"".join(payload(2, size))).hexdigest()
    assert await asyncio.wait_for(received_by_pod, 30) == sent
    assert metric_value(sidecar, 'sidecar_tunnel_bytes_total{direction="to_pod"}') >= size
    assert metric_value(sidecar, 'sidecar_tunnel_bytes_total{direction="from_pod"}') >= size
    for server in servers:
        server.close()


async def raw_line(port: int, line: str) -> str:
    """Send one line through the forward, return the echoed line ('' if none yet)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return ""
    try:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 30)).decode()
    finally:
        writer.close()


async def test_bulk_send_path_is_byte_exact_across_rekeys(sshd: SshGateway) -> None:
    """tunnel/bulksend.py and bulkrecv.py frame, encrypt and decrypt channel data
    themselves, between asyncssh's own packets (window adjusts, key exchanges, EOF).
    Through the real sshd, rekeying every 4 MB sent, 40 MB pod -> client and 20 MB back
    arrive intact, and the data took the lean paths under every key."""
    import asyncssh

    from tunnel import bulkrecv, bulksend

    down, up, rekey = 40 * MB, 20 * MB, 4 * MB
    conn = await asyncssh.connect(
        sshd.host,
        sshd.port,
        username=sshd.user,
        client_keys=[str(sshd.client_key)],
        known_hosts=str(sshd.known_hosts),
        encryption_algs=["aes256-gcm@openssh.com"],
        rekey_bytes=rekey,
        agent_path=None,
        config=None,
    )
    async with conn:
        sender, receiver = bulksend.install(conn), bulkrecv.install(conn)
        assert sender is not None
        assert receiver is not None
        received_by_pod: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def pod(reader: Any, writer: Any) -> None:
            async def send() -> None:
                for chunk in payload(3, down):
                    writer.write(chunk)
                    await writer.drain()
                writer.write_eof()

            sending = asyncio.create_task(send())
            digest = hashlib.sha256()
            while data := await reader.read(MB):
                digest.update(data)
            received_by_pod.set_result(digest.hexdigest())
            await sending
            writer.close()

        listener = await conn.start_server(lambda _host, _port: pod, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.get_port())
        sent, got, count = await exchange(reader, writer, seed=4, size=up)
        assert await asyncio.wait_for(received_by_pod, 30) == sent
    assert count == down
    assert got == hashlib.sha256(b"".join(payload(3, down))).hexdigest()
    assert sender.lean_packets >= down // (32 * 1024)  # sshd's largest forwarded packet
    assert sender.keys >= down // rekey
    # Only packets read while asyncssh runs a key exchange take its own path.
    assert receiver.lean_packets >= 0.9 * up // (32 * 1024)


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


async def test_a_gateway_port_taken_by_another_process_is_skipped(
    start_sidecar: StartSidecar, sshd: SshGateway, control_plane: LocalCluster
) -> None:
    """sshd refuses a port something else holds (ChannelListenError): the range policy
    moves to the next port, and nothing crashes."""
    target = free_port()
    server = await asyncio.start_server(text_server("skipped ahead"), POD_IP, target)
    squatter = await asyncio.start_server(text_server("squatter"), "127.0.0.1", 0)
    taken = squatter.sockets[0].getsockname()[1]
    env = tunnel_env(sshd, mode="direct", TCP_TUNNEL_PORT_RANGE=f"{taken}-{taken + 20}")
    sidecar = start_sidecar(env=env)
    body = tunnelled_pod(target)
    await running(sidecar, body)
    pretend_pod_ip(control_plane, body, POD_IP)
    [tunnel] = await open_tunnels(sidecar, body["pod"]["metadata"]["uid"])
    assert tunnel["gateway_port"] != taken
    assert await raw_answer(tunnel["gateway_port"]) == "skipped ahead"
    assert sidecar.process.poll() is None
    squatter.close()
    server.close()
