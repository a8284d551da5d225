"""Write-path benchmark: how fast ``/create`` and ``/delete`` are, and what each costs remotely.

Run: ``.venv/bin/python -m tests.bench.write_bench [--background 20 1000] [--sample 100]
[--clients 20]`` (after ``make test`` built the binaries). It starts its own control
plane (kwok nodes sized for the pods) and one sidecar process on 127.0.0.1. For each
background size it fills the namespace to that many pods through the sidecar, then
measures, with 1 and with ``--clients`` concurrent clients:

* create: ``--sample`` plain pods (one container, no volumes: what the issue counts);
* delete: those pods again, until the sidecar's journal is empty (its janitor's follow-up
  work counts to the delete it finishes).

Next to each, the API server's own speed: as many plain pods created and deleted (by
name) straight on it, as the sidecar's user, with as many clients (the bound the
sidecar's write path can approach).

Per phase: calls per second, the p50 answer time, and the remote requests per call,
counted from the API server's audit log (the sidecar's user, requests in the benchmark's
remote namespace or on that namespace itself: the health check and the cluster-wide
watch are not per-call work). At the end, the memory check: RSS before, after ``--churn``
pods created and deleted with ``--clients`` clients, and ``--settle`` seconds later.

Everything it starts is stopped at the end; all traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from sidecar.memory import TRIM_INTERVAL_SECONDS
from tests import podshapes
from tests.bench.burst_bench import memory
from tests.fixtures.audit import SidecarRequests
from tests.fixtures.sidecar_process import SidecarProcess, launch
from tests.http_client import client_session
from tests.integration.plugin_client import metric_value
from tests.localcluster import LocalCluster, ensure_binaries

Runner = Callable[[], Awaitable[tuple[float, list[float]]]]
"""One measured phase: (elapsed seconds, each call's answer time)."""

LOCAL_NAMESPACE = "bench"
REMOTE_NAMESPACE = f"offloading-{LOCAL_NAMESPACE}"
PODS_PER_NODE = 100  # kwok nodes here allow 110


def plain_body(index: int) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    the_pod = podshapes.pod(
        uid,
        f"w-{index}",
        {"containers": [podshapes.container("main")]},
        namespace=LOCAL_NAMESPACE,
    )
    return podshapes.body(the_pod)


async def wait_for(what: str, check: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)  # polling a condition with a deadline


async def call_many(
    sidecar: SidecarProcess, path: str, payloads: list[Any], clients: int
) -> tuple[float, list[float]]:
    """POST every payload with ``clients`` concurrent clients; (elapsed, answer times).
    Any answer but 200 stops the benchmark."""
    queue = list(reversed(payloads))
    times: list[float] = []
    async with client_session() as session:

        async def client() -> None:
            while queue:
                payload = queue.pop()
                started = time.monotonic()
                async with session.post(sidecar.tcp_url + path, data=json.dumps(payload)) as r:
                    text = await r.text()
                    if r.status != 200:
                        raise RuntimeError(f"{path}: {r.status} {text.strip()}")
                times.append(time.monotonic() - started)

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.monotonic() - started, times


async def direct_many(
    cluster: LocalCluster, method: str, names: list[str], clients: int
) -> tuple[float, list[float]]:
    """The API server's own speed, for comparison: the same number of plain pods created
    (``POST``) or deleted (``DELETE`` by name) straight on it, as the sidecar's user."""
    queue = list(reversed(names))
    times: list[float] = []
    url = f"{cluster.server}/api/v1/namespaces/{REMOTE_NAMESPACE}/pods"
    ssl_context = cluster._ssl  # the cluster's own CA
    assert ssl_context is not None
    headers = {"Authorization": f"Bearer {cluster.sidecar_token}"}
    async with client_session(headers=headers) as session:

        async def client() -> None:
            while queue:
                name = queue.pop()
                started = time.monotonic()
                if method == "POST":
                    body = {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": name},
                        "spec": {"containers": [podshapes.container("main")]},
                    }
                    request = session.post(url, json=body, ssl=ssl_context)
                else:
                    request = session.delete(f"{url}/{name}", ssl=ssl_context)
                async with request as r:
                    if r.status not in (200, 201, 202):
                        raise RuntimeError(f"{method} {name}: {r.status} {await r.text()}")
                    await r.read()
                times.append(time.monotonic() - started)

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.monotonic() - started, times


def remote_pods(cluster: LocalCluster) -> int:
    listing = cluster.request("GET", f"/api/v1/namespaces/{REMOTE_NAMESPACE}/pods", timeout=120)
    return len(listing.get("items", [])) if isinstance(listing, dict) else 0


async def phase(
    label: str,
    run: Runner,
    count: int,
    audit: SidecarRequests,
    settled: Callable[[], bool],
) -> dict[str, Any]:
    audit.mark()
    elapsed, times = await run()
    await wait_for(f"{label}: settled", settled)
    requests = audit.since_mark()
    row = {
        "phase": label,
        "per_s": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "requests_per_call": round(sum(requests.values()) / count, 2),
        "requests": dict(requests.most_common()),
    }
    print(json.dumps(row), flush=True)
    return row


async def run(args: argparse.Namespace) -> None:
    most = max(args.background) + args.sample
    nodes = max(2, -(-max(most, args.churn) // PODS_PER_NODE) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp) / "cluster", ensure_binaries(), nodes=nodes)
        cluster.start(timeout=300)
        sidecar = launch(Path(tmp), cluster)
        try:
            sidecar.wait_until_ready(timeout=60)
            audit = SidecarRequests(cluster, REMOTE_NAMESPACE)

            def journal_empty() -> bool:
                return metric_value(sidecar, "sidecar_janitor_pending_deletes") == 0

            def created(count: int) -> bool:
                return remote_pods(cluster) >= count

            def deleted(left: int) -> bool:
                return journal_empty() and remote_pods(cluster) <= left

            def done() -> bool:
                return True  # the API server answered: nothing follows

            background: list[dict[str, Any]] = []
            rows = []
            for size in sorted(args.background):
                fill = [plain_body(len(background) + i) for i in range(size - len(background))]
                await call_many(sidecar, "/create", fill, args.clients)
                background += fill
                await wait_for("background created", partial(created, size))
                for clients in (1, args.clients):
                    bodies = [plain_body(100_000 + i) for i in range(args.sample)]
                    pods = [b["pod"] for b in bodies]
                    names = [f"direct-{uuid.uuid4()}" for _ in range(args.sample)]
                    phases: list[tuple[str, Runner, Callable[[], bool]]] = [
                        (
                            "create",
                            partial(call_many, sidecar, "/create", bodies, clients),
                            partial(created, size + args.sample),
                        ),
                        (
                            "API server alone: create",
                            partial(direct_many, cluster, "POST", names, clients),
                            done,
                        ),
                        (
                            "API server alone: delete",
                            partial(direct_many, cluster, "DELETE", names, clients),
                            done,
                        ),
                        (
                            "delete",
                            partial(call_many, sidecar, "/delete", pods, clients),
                            partial(deleted, size),
                        ),
                    ]
                    for label, runner, settled in phases:
                        rows.append(
                            await phase(
                                f"{label}, {size} in ns, {clients} client(s)",
                                runner,
                                args.sample,
                                audit,
                                settled,
                            )
                        )
            await call_many(sidecar, "/delete", [b["pod"] for b in background], args.clients)
            await wait_for(
                "background deleted", lambda: journal_empty() and remote_pods(cluster) == 0
            )
            pid = sidecar.process.pid
            before = memory(pid)["VmRSS"]
            churn = [plain_body(200_000 + i) for i in range(args.churn)]
            await call_many(sidecar, "/create", churn, args.clients)
            peak = memory(pid)["VmRSS"]
            await call_many(sidecar, "/delete", [b["pod"] for b in churn], args.clients)
            await wait_for("churn deleted", lambda: journal_empty() and remote_pods(cluster) == 0)
            await asyncio.sleep(args.settle)  # the sidecar trims its heap on a timer
            after = memory(pid)["VmRSS"]
            print(
                json.dumps(
                    {
                        "rss_before_mib": round(before),
                        "rss_after_creates_mib": round(peak),
                        f"rss_{args.settle:.0f}s_after_deletes_mib": round(after),
                        "ratio": round(after / before, 2),
                    }
                ),
                flush=True,
            )
        finally:
            sidecar.stop()
            cluster.stop()
            if args.keep_log:
                await asyncio.to_thread(Path(args.keep_log).write_text, sidecar.log())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--background", type=int, nargs="+", default=[20, 1000])
    parser.add_argument("--sample", type=int, default=100, help="pods per measured phase")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--churn", type=int, default=1000, help="pods for the memory check")
    parser.add_argument("--settle", type=float, default=2 * TRIM_INTERVAL_SECONDS + 5)
    parser.add_argument("--keep-log", default="", help="copy the sidecar's log to this file")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
