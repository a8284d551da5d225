"""Status pipeline benchmark: many offloaded pods running on kwok, one sidecar watching them.

Run: ``.venv/bin/python -m tests.bench.status_bench [--pods 5000,10000]`` (after ``make
test`` built the binaries). It starts its own control plane on 127.0.0.1, with kwok
nodes sized for the largest count (``NODE_PODS`` pods each), creates the pods directly
in the remote cluster with the sidecar's labels (as the sidecar would), waits until kwok
runs them all, then starts a fresh sidecar and measures; with several counts, it adds
pods up to the next count and measures again with another fresh sidecar:

* initial sync: sidecar start to its first answered ``/status`` (LIST of every pod);
* ``/status`` latency for one pod, 2,000 sequential calls (p50/p99);
* ``/status`` latency for 1,000 pods in one call, 100 sequential calls (p50/p99; the
  first call, before any answer was cached, separately);
* status propagation: a remote status change (PATCH of a pod's status) to ``/status``
  showing it, 100 samples (p50/p99);
* the sidecar's resident memory (VmRSS) after the sync and at the end, and its peak
  (VmHWM).

Everything it starts is stopped at the end; all traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.core import naming
from tests.bench.burst_bench import memory
from tests.fixtures.sidecar_process import launch
from tests.localcluster import LocalCluster, ensure_binaries

NAMESPACE = "offloading-bench"
NODE_PODS = 3000
"""Pods per kwok node (its ``pods`` allocatable); nodes are added for larger counts."""
MIN_NODES = 3
BATCH = 1000
"""Pods per call in the many-pods measure."""
SETUP_DEADLINE_SECONDS = 1800.0
"""Longest wait for kwok to run the pods of one step."""


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def remote_pod(index: int, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"bench-{index}-{uid}",
            "labels": naming.ownership_labels(uid),
            "annotations": naming.ownership_annotations(
                source_uid=uid, name=f"bench-{index}", namespace="bench"
            ),
        },
        "spec": {
            "containers": [{"name": "main", "image": "busybox"}],
            "automountServiceAccountToken": False,
        },
    }


def local_pod(index: int, uid: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"bench-{index}", "namespace": "bench", "uid": uid},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }


async def create_pods(cluster: LocalCluster, uids: list[str], start: int = 0) -> None:
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}
    ssl_context = cluster._ssl  # the cluster's own CA context
    url = f"{cluster.server}/api/v1/namespaces/{NAMESPACE}/pods"
    async with aiohttp.ClientSession(headers=headers) as session:
        semaphore = asyncio.Semaphore(32)

        async def one(index: int, uid: str) -> None:
            async with semaphore:
                for _ in range(20):
                    async with session.post(url, json=remote_pod(index, uid), ssl=ssl_context) as r:
                        if r.status in (201, 409):
                            return
                        if r.status == 403:  # default ServiceAccount not there yet
                            await asyncio.sleep(0.5)
                            continue
                        raise RuntimeError(f"create failed: {r.status} {await r.text()}")

        await asyncio.gather(*(one(i, uid) for i, uid in enumerate(uids) if i >= start))


def running_count(cluster: LocalCluster) -> int:
    items = cluster.request(
        "GET",
        f"/api/v1/namespaces/{NAMESPACE}/pods?fieldSelector=status.phase=Running",
        timeout=120,
    )["items"]
    return len(items)


async def status_of(session: aiohttp.ClientSession, url: str, pod: dict[str, Any]) -> Any:
    async with session.get(url + "/status", data=json.dumps([pod])) as response:
        text = await response.text()
        return response.status, json.loads(text) if response.status == 200 else text


async def status_raw(session: aiohttp.ClientSession, url: str, body: bytes) -> bytes:
    """One ``/status`` call with an encoded body; the answer's bytes (200 or raises)."""
    async with session.get(url + "/status", data=body) as response:
        raw = await response.read()
        if response.status != 200:
            raise RuntimeError(f"/status answered {response.status}: {raw[:200]!r}")
        return raw


async def measure(cluster: LocalCluster, workdir: Path, uids: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    sidecar = launch(workdir, cluster, name="bench-sidecar")
    probe = local_pod(0, uids[0])
    results: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    code, _ = await status_of(session, sidecar.tcp_url, probe)
                    if code == 200:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            results["initial_sync_seconds"] = round(time.monotonic() - started, 2)
            results["rss_mib_after_sync"] = round(memory(sidecar.process.pid)["VmRSS"], 1)

            latencies = []
            for _ in range(2000):
                t0 = time.perf_counter()
                await status_of(session, sidecar.tcp_url, probe)
                latencies.append((time.perf_counter() - t0) * 1000)
            results["status_latency_ms_p50"] = round(statistics.median(latencies), 2)
            results["status_latency_ms_p99"] = round(percentile(latencies, 0.99), 2)

            # Many pods in one call: encoded once, so only the sidecar's work is timed
            # (and the answer's transfer and read).
            batch = json.dumps([local_pod(i, uids[i]) for i in range(BATCH)]).encode()
            batch_latencies = []
            for _ in range(100):
                t0 = time.perf_counter()
                raw = await status_raw(session, sidecar.tcp_url, batch)
                batch_latencies.append((time.perf_counter() - t0) * 1000)
            answer = json.loads(raw)
            assert len(answer) == BATCH and all(a["JID"] for a in answer), "pods missing"
            results["status_batch_pods"] = BATCH
            results["status_batch_ms_first"] = round(batch_latencies[0], 1)
            results["status_batch_ms_p50"] = round(statistics.median(batch_latencies), 1)
            results["status_batch_ms_p99"] = round(percentile(batch_latencies, 0.99), 1)

            delays = []
            marker = len(uids) + 1  # a new exit code at every step of a run
            for index in range(100):
                uid = uids[index]
                name = f"bench-{index}-{uid}"
                patch = {
                    "status": {
                        "containerStatuses": [
                            {
                                "name": "main",
                                "image": "busybox",
                                "imageID": "",
                                "ready": True,
                                "restartCount": 0,
                                "started": True,
                                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                                "lastState": {
                                    "terminated": {"exitCode": marker + index, "reason": "Bench"}
                                },
                            }
                        ]
                    }
                }
                t0 = time.monotonic()
                await asyncio.to_thread(
                    cluster.request,
                    "PATCH",
                    f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/status",
                    patch,
                )
                while True:
                    _, body = await status_of(session, sidecar.tcp_url, local_pod(index, uid))
                    last = body[0]["containers"][0].get("lastState", {})
                    if last.get("terminated", {}).get("exitCode") == marker + index:
                        break
                    await asyncio.sleep(0.002)
                delays.append((time.monotonic() - t0) * 1000)
            results["propagation_ms_p50"] = round(statistics.median(delays), 1)
            results["propagation_ms_p99"] = round(percentile(delays, 0.99), 1)
            results["rss_mib_end"] = round(memory(sidecar.process.pid)["VmRSS"], 1)
            results["rss_mib_peak"] = round(memory(sidecar.process.pid)["VmHWM"], 1)
    finally:
        sidecar.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pods",
        default="5000",
        help="running pods to measure at; several, comma-separated, measure in steps",
    )
    args = parser.parse_args()
    steps = sorted({int(count) for count in args.pods.split(",")})
    workdir = Path(tempfile.mkdtemp(prefix="status-bench-"))
    cluster = LocalCluster(workdir / "cluster", ensure_binaries(), nodes=0, progress=print)
    nodes = max(MIN_NODES, math.ceil(steps[-1] * 1.2 / NODE_PODS))
    with cluster:
        for index in range(nodes):
            cluster.request(
                "POST",
                "/api/v1/nodes",
                LocalCluster.node_body(
                    f"bench-node-{index}",
                    allocatable={"cpu": "1000", "memory": "4Ti", "pods": str(NODE_PODS)},
                ),
            )
        cluster.request(
            "POST",
            "/api/v1/namespaces",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": NAMESPACE, "labels": {"interlink.io": "offloading"}},
            },
        )
        uids = [str(uuid.uuid4()) for _ in range(steps[-1])]
        all_results = []
        made = 0
        for count in steps:
            t0 = time.monotonic()
            asyncio.run(create_pods(cluster, uids[:count], start=made))
            print(f"created {count - made} pods in {time.monotonic() - t0:.1f} s")
            made = count
            while (running := running_count(cluster)) < count:
                if time.monotonic() - t0 > SETUP_DEADLINE_SECONDS:
                    raise RuntimeError(f"only {running}/{count} pods running in time")
                print(f"{running}/{count} running")
                time.sleep(5)
            print(f"all running after {time.monotonic() - t0:.1f} s")
            results = asyncio.run(measure(cluster, workdir, uids[:count]))
            results["pods"] = count
            results["kwok_nodes"] = nodes
            results["cpu_cores"] = os.cpu_count()
            results["load_average_1m"] = round(os.getloadavg()[0], 2)
            print(json.dumps(results, indent=2))
            all_results.append(results)
        print(json.dumps(all_results))


if __name__ == "__main__":
    main()
