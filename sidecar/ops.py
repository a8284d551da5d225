"""The ops server: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

Separate from the plugin API so probes and scrapes never queue behind interLink calls,
and so the plugin API can stay on a unix socket while Prometheus and the kubelet use TCP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from metrics import Metrics, metrics_handler
from sidecar.remote.health import RemoteHealth


@dataclass(slots=True)
class ProcessState:
    """What the probes report. ``alive`` is filled by the lifecycle owner."""

    stopping: bool = False
    alive: Callable[[], dict[str, bool]] = field(default=lambda: {})


STATE_KEY = web.AppKey("state", ProcessState)
HEALTH_KEY = web.AppKey("health", RemoteHealth)


async def healthz(request: web.Request) -> web.Response:
    """200 while every root task runs; 503 names the ones that ended."""
    tasks = request.app[STATE_KEY].alive()
    dead = sorted(name for name, alive in tasks.items() if not alive)
    if dead:
        return web.Response(status=503, text=f"root task(s) ended: {', '.join(dead)}\n")
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """200 when not shutting down and the remote API server answers."""
    state, health = request.app[STATE_KEY], request.app[HEALTH_KEY]
    if state.stopping:
        return web.Response(status=503, text="shutting down\n")
    if not health.up:
        return web.Response(status=503, text=health.describe() + "\n")
    return web.Response(text="ok\n")


def make_ops_app(*, state: ProcessState, health: RemoteHealth, metrics: Metrics) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state
    app[HEALTH_KEY] = health
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler(metrics.registry))
    return app
