"""Probes: /readyz says whether the plugin API serves (503 only while starting and once
shutdown starts; the remote and the gateway are in its body); /healthz names a root
task that ended or one that makes no progress, and lists dead deletes without failing;
/metrics exposes the catalogue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from metrics import make_metrics
from sidecar.ops import ProcessState, make_ops_app
from sidecar.remote.health import RemoteHealth

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


async def test_probes_follow_the_process_state(aiohttp_client: ClientFactory) -> None:
    state, health = ProcessState(), RemoteHealth()
    tasks = {"plugin-api-server": True, "remote-prober": True}
    state.alive = lambda: tasks
    client = await aiohttp_client(
        make_ops_app(
            state=state, health=health, metrics=make_metrics(CollectorRegistry(), version="test")
        )
    )

    response = await client.get("/readyz")
    assert response.status == 503
    assert "first remote check" in await response.text()

    health.record(up=True, detail="namespace default read from storage")
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/healthz")).status == 200

    state.stopping = True
    response = await client.get("/readyz")
    assert response.status == 503
    assert "shutting down" in await response.text()

    tasks["remote-prober"] = False
    response = await client.get("/healthz")
    assert response.status == 503
    assert "remote-prober" in await response.text()

    metrics_text = await (await client.get("/metrics")).text()
    assert 'sidecar_build_info{version="test"} 1.0' in metrics_text


async def test_readiness_does_not_follow_the_remote(aiohttp_client: ClientFactory) -> None:
    """A remote outage is in /readyz's body, never in its status: readiness that
    followed it would drop interLink's /delete calls (interLink never retries one)."""
    state, health = ProcessState(), RemoteHealth()
    client = await aiohttp_client(
        make_ops_app(
            state=state, health=health, metrics=make_metrics(CollectorRegistry(), version="test")
        )
    )
    health.record(up=True, detail="namespace default read from storage")
    health.record(up=False, detail="no answer within 5 s")
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.text()
    assert body.startswith("ok\n") and "unreachable since" in body and "no answer" in body
    assert (await client.get("/healthz")).status == 200


async def test_faults_fail_liveness_and_notes_do_not(aiohttp_client: ClientFactory) -> None:
    faults: list[str] = []
    notes: list[str] = []
    state = ProcessState(faults=lambda: faults, notes=lambda: notes)
    health = RemoteHealth()
    health.record(up=True, detail="ok")
    client = await aiohttp_client(
        make_ops_app(
            state=state, health=health, metrics=make_metrics(CollectorRegistry(), version="test")
        )
    )
    notes.append("janitor: 1 delete(s) given up on (dead-letter)")
    response = await client.get("/healthz")
    assert response.status == 200
    assert "given up on" in await response.text()

    faults.append("janitor: app.state_dir: cannot write the journal: read-only file system")
    response = await client.get("/healthz")
    assert response.status == 503
    assert "read-only file system" in await response.text()
    assert (await client.get("/readyz")).status == 200  # the plugin API still serves
