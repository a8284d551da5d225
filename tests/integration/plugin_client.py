"""Calling the sidecar the way interLink does: JSON bodies, also on GET."""

from __future__ import annotations

import asyncio
import io
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tests import podshapes
from tests.deadlines import scaled
from tests.fixtures.sidecar_process import SidecarProcess
from tests.http_client import client_session


async def call(
    sidecar: SidecarProcess, method: str, path: str, body: Any, *, via_unix: bool = False
) -> tuple[int, bytes]:
    connector = aiohttp.UnixConnector(path=str(sidecar.unix_path)) if via_unix else None
    # interLink addresses a unix socket as http://unix/<endpoint> (Host: unix).
    base = "http://unix" if via_unix else sidecar.tcp_url
    raw = json.dumps(body).encode()
    async with (
        client_session(connector=connector) as session,
        session.request(
            method,
            base + path,
            # aiohttp warns about big bytes bodies (they block its loop): stream those.
            data=io.BytesIO(raw) if len(raw) > 1024 * 1024 else raw,
            headers={"Content-Type": "application/json", "InterLink-Http-Session": "GetStatus#1"},
        ) as response,
    ):
        return response.status, await response.read()


def new_pod(*containers: str, name: str = "hello", namespace: str = "default") -> dict[str, Any]:
    """A pod as the virtual kubelet sends it (bound to the virtual node, with its toleration)."""
    uid = str(uuid.uuid4())
    spec = {"containers": [podshapes.container(c, resources={}) for c in containers]}
    return podshapes.pod(uid, f"{name}-{uid[:8]}", spec, namespace=namespace)


def create_body(pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "pod": pod,
        "container": [
            {
                "name": c["name"],
                "configMaps": None,
                "secrets": None,
                "emptyDirs": None,
                "projectedvolumemaps": None,
            }
            for c in pod["spec"]["containers"]
        ],
        "jobConfig": {},
    }


def ops_get(sidecar: SidecarProcess, path: str) -> tuple[int, str]:
    """Status and body of a GET on the sidecar's ops server (``/healthz``, ``/readyz``)."""
    try:
        with urllib.request.urlopen(sidecar.ops_url + path, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def ops_get_async(sidecar: SidecarProcess, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(ops_get, sidecar, path)


async def poll(
    what: str,
    fetch: Callable[[], Awaitable[Any]],
    done: Callable[[Any], bool],
    *,
    timeout: float = 90,
) -> Any:
    """Fetch until ``done(value)``; fail after ``timeout`` s (scaled by
    ``TEST_TIMEOUT_SCALE``) showing the last value.

    The default is generous: on a machine whose two cores are busy (the suite running
    next to a build) kwok and the API server take several times their idle 1-2 s to run
    a pod, and a poll that succeeds returns at once anyway."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = await fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.2)  # polling a condition with a deadline


def log_request(pod: dict[str, Any], container: str, **opts: Any) -> dict[str, Any]:
    """A ``LogStruct`` as interLink sends it (every key present, Go zero values)."""
    options = {
        "Tail": 0,
        "Bytes": 0,
        "Timestamps": False,
        "Follow": False,
        "Previous": False,
        "SinceSeconds": 0,
        "SinceTime": "0001-01-01T00:00:00Z",
    } | opts
    return {
        "Namespace": pod["metadata"]["namespace"],
        "PodUID": pod["metadata"]["uid"],
        "PodName": pod["metadata"]["name"],
        "ContainerName": container,
        "Opts": options,
    }


def metric_value(sidecar: SidecarProcess, series: str) -> float:
    """The value of one series (name with labels) on the sidecar's /metrics, 0 if absent."""
    with urllib.request.urlopen(sidecar.ops_url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[1])
    return 0.0
