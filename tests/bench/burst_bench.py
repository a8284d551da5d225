"""Memory after a burst: does the sidecar give back what a wide burst of creates took?

Run: ``.venv/bin/python -m tests.bench.burst_bench [--width 500] [--rounds 2]`` (after
``make test`` built the binaries). It starts its own control plane and one sidecar
process on 127.0.0.1, then, per round: ``width`` concurrent ``/create`` calls of pods
with copied ConfigMaps and Secrets (the shape interLink sends most), waits until all
run, ``width`` concurrent ``/delete`` calls, waits until the remote cluster holds
nothing of them. It prints the sidecar's resident memory (VmRSS, and VmHWM, the peak)
at start, after each burst of creates, after each round's deletes, and ``--settle``
seconds later (the sidecar trims its heap every ``TRIM_INTERVAL_SECONDS``).

Extra environment for the sidecar (``--env KEY=VALUE``, repeatable) compares settings,
e.g. glibc's ``MALLOC_ARENA_MAX``. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from sidecar.core import naming
from sidecar.memory import TRIM_INTERVAL_SECONDS
from tests import podshapes
from tests.fixtures.sidecar_process import SidecarProcess, launch
from tests.http_client import client_session
from tests.localcluster import LocalCluster, ensure_binaries

MiB = 1024 * 1024


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def body(uid: str) -> dict[str, Any]:
    created = podshapes.SHAPES["shared-volumes"](uid)
    created["pod"]["metadata"]["namespace"] = "burst"
    return created


async def call_all(
    sidecar: SidecarProcess, path: str, bodies: list[Any]
) -> tuple[Counter[int], str]:
    """All calls at once; their answers counted by status, with the first refusal."""
    async with client_session() as session:

        async def one(payload: Any) -> tuple[int, str]:
            async with session.post(sidecar.tcp_url + path, data=json.dumps(payload)) as r:
                return r.status, await r.text()

        answers = await asyncio.gather(*(one(b) for b in bodies))
    codes = Counter(code for code, _ in answers)
    refused = next((f"; first refusal: {text.strip()}" for c, text in answers if c != 200), "")
    return codes, f"{dict(codes)}{refused}"


def remote_count(cluster: LocalCluster, kind: str) -> int:
    selector = f"{naming.OFFLOADING_LABEL}={naming.OFFLOADING_VALUE}"
    listing = cluster.request(
        "GET", f"/api/v1/namespaces/offloading-burst/{kind}?labelSelector={selector}"
    )
    return len(listing.get("items", [])) if isinstance(listing, dict) else 0


async def wait(what: str, check: Any, timeout: float = 600) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(what)
        await asyncio.sleep(0.5)  # polling a condition with a deadline
    return time.monotonic() - started


class ReadLatency:
    """The API server's own speed during a burst: a GET of namespace ``default`` (what
    the sidecar's health check reads) every half second from a thread; the slowest."""

    def __init__(self, cluster: LocalCluster) -> None:
        self._cluster = cluster
        self._stop = threading.Event()
        self.slowest = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            started = time.monotonic()
            with contextlib.suppress(OSError):
                self._cluster.request(
                    "GET",
                    "/api/v1/namespaces/default",
                    timeout=60,
                    token=self._cluster.sidecar_token,  # as the sidecar authenticates
                )
            self.slowest = max(self.slowest, time.monotonic() - started)

    def take(self) -> float:
        slowest, self.slowest = self.slowest, 0.0
        return slowest

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def run(width: int, rounds: int, env: dict[str, str], settle: float, keep_log: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp) / "cluster", ensure_binaries(), nodes=3)
        cluster.start()
        sidecar = launch(Path(tmp), cluster, env=env)
        try:
            sidecar.wait_until_ready(timeout=60)
            pid = sidecar.process.pid
            latency = ReadLatency(cluster)
            start = memory(pid)["VmRSS"]
            print(f"start: {memory(pid)}")
            for round_ in range(1, rounds + 1):
                bodies = [body(str(uuid.uuid4())) for _ in range(width)]
                started = time.monotonic()
                created, codes = await call_all(sidecar, "/create", bodies)
                took = time.monotonic() - started
                print(
                    f"round {round_}: slowest GET of a namespace meanwhile {latency.take():.2f} s"
                )
                print(f"round {round_}: {width} creates in {took:.1f} s ({codes}); {memory(pid)}")
                await wait(
                    "pods created",
                    lambda ok=created[200]: remote_count(cluster, "pods") >= ok,  # type: ignore[misc]
                )
                _, codes = await call_all(sidecar, "/delete", [b["pod"] for b in bodies])
                gone = await wait(
                    "everything deleted",
                    lambda: (
                        sum(remote_count(cluster, k) for k in ("pods", "configmaps", "secrets"))
                        == 0
                    ),
                )
                print(
                    f"round {round_}: {width} deletes ({codes}), remote empty "
                    f"after {gone:.1f} s; {memory(pid)}"
                )
                # The sidecar trims its heap every TRIM_INTERVAL_SECONDS: give it two.
                await asyncio.sleep(settle)
                print(f"round {round_}: {settle:.0f} s later: {memory(pid)}")
            after = memory(pid)["VmRSS"]
            print(f"after the bursts: RSS {after:.0f} MiB = {after / start:.2f}x the start")
        finally:
            if "latency" in locals():
                latency.stop()
            sidecar.stop()
            cluster.stop()
            if keep_log:
                await asyncio.to_thread(Path(keep_log).write_text, sidecar.log())
                print(f"the sidecar's log: {keep_log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--settle", type=float, default=2 * TRIM_INTERVAL_SECONDS + 5, help="seconds idle after"
    )
    parser.add_argument("--keep-log", default="", help="copy the sidecar's log to this file")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the sidecar")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    asyncio.run(run(args.width, args.rounds, env, args.settle, args.keep_log))


if __name__ == "__main__":
    main()
