"""Probes: /readyz turns 503 once shutdown starts or while the remote server is away;
/healthz names a root task that ended; /metrics exposes the catalogue."""

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
    assert "not checked yet" in await response.text()

    health.record(up=True, detail="version v1.35.4")
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
