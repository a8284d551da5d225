"""Tunnel benchmark: the sidecar's reverse tunnel against OpenSSH's own ``ssh -R``.

Run: ``.venv/bin/python -m tests.bench.tunnel_bench [--megabytes 200] [--rounds 3]``
(after ``make test`` installed sshd and built the control-plane binaries).

One run starts, all on 127.0.0.1: a control plane (kwok), a real OpenSSH sshd as the
gateway, a target server in its own process standing in for the pod, the real sidecar
(``dial_mode = direct``; the pod's IP is patched to 127.0.0.1 as kwok's is not routable)
and ``ssh -N -R`` (twice: default and AES-GCM cipher) through the same sshd to the same
target. All paths therefore share sshd, the target and the client; only the tunnel end
differs. Measured, per path:

* throughput client -> pod (upload) and pod -> client (download): ``--megabytes`` per
  transfer, ``--rounds`` rounds alternating the paths, the median kept; the ratio
  sidecar / OpenSSH is reported per direction, against ``ssh -R`` with its default
  cipher (chacha20-poly1305, OpenSSH's first choice) and with ``-c aes256-gcm@openssh.com``
  (the sidecar's first choice, ``tcp_tunnel.ciphers``): the like-for-like comparison;
* connection set-up latency: connect through the gateway, one byte there and back,
  ``--connections`` sequential connections (p50/p99);
* CPU per MB: user+system CPU of the tunnel end's process (the sidecar, or the ``ssh``
  client) over the throughput rounds, from /proc, divided by the megabytes moved.

The client and the target use blocking sockets (``sendall``/``recv_into`` run without
the GIL), so neither is the bottleneck of either path. Everything started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests import podshapes
from tests.bench.status_bench import percentile
from tests.fixtures.sidecar_process import SidecarProcess, launch
from tests.fixtures.sshd import SshdServer
from tests.integration.plugin_client import call
from tests.localcluster import LocalCluster, ensure_binaries
from tests.localcluster.cluster import free_port

MB = 1024 * 1024
BLOCK = 256 * 1024
COUNT = struct.Struct("!Q")

# --- the target: one process, a thread per connection --------------------------------
# Protocol, first byte: b"U" the client uploads until EOF, the target answers the byte
# count; b"D" + count: the target sends that many bytes and closes; b"E": echo one byte.


def _serve_one(conn: socket.socket) -> None:
    with conn:
        mode = conn.recv(1)
        if mode == b"E":
            conn.sendall(conn.recv(1))
        elif mode == b"U":
            buffer, total = bytearray(BLOCK), 0
            while n := conn.recv_into(buffer):
                total += n
            conn.sendall(COUNT.pack(total))
        elif mode == b"D":
            (size,) = COUNT.unpack(_recv_exactly(conn, COUNT.size))
            block = memoryview(os.urandom(BLOCK))
            while size > 0:
                conn.sendall(block[: min(size, BLOCK)])
                size -= BLOCK
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)  # wait for the client's close


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed early")
        data += chunk
    return data


def run_target(port: int) -> None:
    with socket.create_server(("127.0.0.1", port), backlog=128) as server:
        print("ready", flush=True)
        while True:
            conn, _ = server.accept()
            threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


# --- the client -----------------------------------------------------------------------


def upload(port: int, size: int) -> float:
    """Seconds to move ``size`` bytes to the target, until it acknowledged them all."""
    block = memoryview(os.urandom(BLOCK))
    with socket.create_connection(("127.0.0.1", port)) as conn:
        started = time.perf_counter()
        conn.sendall(b"U")
        left = size
        while left > 0:
            conn.sendall(block[: min(left, BLOCK)])
            left -= BLOCK
        conn.shutdown(socket.SHUT_WR)
        (received,) = COUNT.unpack(_recv_exactly(conn, COUNT.size))
        elapsed = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"target received {received} of {size} bytes")
    return elapsed


def download(port: int, size: int) -> float:
    buffer = bytearray(BLOCK)
    with socket.create_connection(("127.0.0.1", port)) as conn:
        started = time.perf_counter()
        conn.sendall(b"D" + COUNT.pack(size))
        total = 0
        while n := conn.recv_into(buffer):
            total += n
        elapsed = time.perf_counter() - started
    if total != size:
        raise RuntimeError(f"client received {total} of {size} bytes")
    return elapsed


def setup_latency_ms(port: int) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"Ex")
        if conn.recv(1) != b"x":
            raise RuntimeError("echo failed")
    return (time.perf_counter() - started) * 1000


def wait_forwarding(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            setup_latency_ms(port)
            return
        except (OSError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polling a condition with a deadline


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the two tunnel ends ----------------------------------------------------------------


def start_openssh(
    sshd: SshdServer, gateway_port: int, target: int, *cipher: str
) -> subprocess.Popen[bytes]:
    g = sshd.gateway
    return subprocess.Popen(
        [
            "ssh",
            *cipher,
            "-N",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={g.known_hosts}",
            "-i",
            str(g.client_key),  # a path to the key file, never the key itself
            "-p",
            str(g.port),
            "-R",
            f"127.0.0.1:{gateway_port}:127.0.0.1:{target}",
            f"{g.user}@{g.host}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def start_sidecar_tunnel(
    workdir: Path, cluster: LocalCluster, sshd: SshdServer, target: int
) -> tuple[SidecarProcess, int]:
    g = sshd.gateway
    low = free_port()
    sidecar = launch(
        workdir,
        cluster,
        name="bench-sidecar",
        env={
            "TCP_TUNNEL_ENABLED": "true",
            "TCP_TUNNEL_GATEWAY_HOST": g.host,
            "TCP_TUNNEL_GATEWAY_PORT": str(g.port),
            "TCP_TUNNEL_USER": g.user,
            "TCP_TUNNEL_PRIVATE_KEY_FILE": str(g.client_key),
            "TCP_TUNNEL_KNOWN_HOSTS_FILE": str(g.known_hosts),
            "TCP_TUNNEL_DIAL_MODE": "direct",
            "TCP_TUNNEL_PORT_POLICY": "range",
            "TCP_TUNNEL_PORT_RANGE": f"{low}-{min(low + 10, 65535)}",
            "LOG_LEVEL": "WARNING",
        },
    )
    await asyncio.to_thread(sidecar.wait_until_ready, 60)
    spec = {"containers": [podshapes.container("target", ports=[{"containerPort": target}])]}
    pod = podshapes.pod("0b0b0b0b-0000-4000-8000-000000000001", "bench-target", spec)
    code, answer = await call(sidecar, "POST", "/create", podshapes.body(pod))
    if code != 200:
        raise RuntimeError(f"/create: {code} {answer!r}")
    namespace = "offloading-default"
    selector = f"interlink.io/source.pod_uid={pod['metadata']['uid']}"
    deadline = time.monotonic() + 60
    while True:
        items = cluster.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
        )
        if items["items"] and items["items"][0].get("status", {}).get("phase") == "Running":
            name = items["items"][0]["metadata"]["name"]
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the bench pod did not run")
        await asyncio.sleep(0.2)
    # kwok's pod IPs are not routable: 127.0.0.1 stands in (the target listens there).
    cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{name}/status",
        {"status": {"podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}},
    )
    while True:
        view = await asyncio.to_thread(tunnels_view, sidecar)
        opened = [t for t in view["tunnels"] if t["state"] == "open"]
        if opened:
            return sidecar, int(opened[0]["gateway_port"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"the tunnel did not open: {view}")
        await asyncio.sleep(0.2)


def tunnels_view(sidecar: SidecarProcess) -> Any:
    with urllib.request.urlopen(sidecar.ops_url + "/tunnels", timeout=5) as response:
        return json.loads(response.read())


# --- the measurement ------------------------------------------------------------------


def measure(paths: dict[str, tuple[int, int]], args: argparse.Namespace) -> dict[str, Any]:
    """``paths``: name -> (gateway port, pid of the tunnel end)."""
    size = args.megabytes * MB
    up: dict[str, list[float]] = {name: [] for name in paths}
    down: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, float] = dict.fromkeys(paths, 0.0)
    for _ in range(args.rounds):
        for name, (port, pid) in paths.items():
            before = cpu_seconds(pid)
            up[name].append(size / MB / upload(port, size))
            down[name].append(size / MB / download(port, size))
            cpu[name] += cpu_seconds(pid) - before
    results: dict[str, Any] = {}
    for name, (port, _) in paths.items():
        latencies = [setup_latency_ms(port) for _ in range(args.connections)]
        results[name] = {
            "upload_MBps": round(statistics.median(up[name]), 1),
            "download_MBps": round(statistics.median(down[name]), 1),
            "setup_ms_p50": round(statistics.median(latencies), 2),
            "setup_ms_p99": round(percentile(latencies, 0.99), 2),
            "cpu_ms_per_MB": round(cpu[name] * 1000 / (2 * args.rounds * args.megabytes), 2),
        }
    ours = results["sidecar"]
    for other in ("openssh", "openssh_aes256_gcm"):
        for direction in ("upload", "download"):
            ratio = ours[f"{direction}_MBps"] / results[other][f"{direction}_MBps"]
            results[f"ratio_{direction}_vs_{other}"] = round(ratio, 2)
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="tunnel-bench-"))
    target_port = free_port()
    target = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.tunnel_bench", "--target", str(target_port)],
        stdout=subprocess.PIPE,
    )
    (workdir / "sshd").mkdir()
    sshd = SshdServer(workdir / "sshd")
    openssh: subprocess.Popen[bytes] | None = None
    same_cipher: subprocess.Popen[bytes] | None = None
    sidecar: SidecarProcess | None = None
    try:
        assert target.stdout is not None
        if target.stdout.readline().strip() != b"ready":
            raise RuntimeError("the target did not start")
        sshd.start()
        cluster = LocalCluster(workdir / "cluster", ensure_binaries(), progress=print)
        with cluster:
            openssh_port, same_cipher_port = free_port(), free_port()
            openssh = start_openssh(sshd, openssh_port, target_port)
            same_cipher = start_openssh(
                sshd, same_cipher_port, target_port, "-c", "aes256-gcm@openssh.com"
            )
            sidecar, sidecar_port = asyncio.run(
                start_sidecar_tunnel(workdir, cluster, sshd, target_port)
            )
            wait_forwarding(openssh_port)
            wait_forwarding(same_cipher_port)
            wait_forwarding(sidecar_port)
            paths = {
                "sidecar": (sidecar_port, sidecar.process.pid),
                "openssh": (openssh_port, openssh.pid),
                "openssh_aes256_gcm": (same_cipher_port, same_cipher.pid),
            }
            results = measure(paths, args)
            results["sshd_log"] = str(sshd.gateway.log_path)
            return results
    finally:
        if sidecar is not None:
            sidecar.stop()
        for client in (openssh, same_cipher):
            if client is not None:
                client.terminate()
                client.wait()
        sshd.stop()
        target.kill()
        target.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--target", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.target:
        run_target(args.target)
        return
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
