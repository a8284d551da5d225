"""The ops server: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``,
``/tunnels`` (the tunnel mapping) and ``/orphans`` (orphaned remote pods).

Separate from the plugin API so probes and scrapes never queue behind interLink calls,
and so the plugin API can stay on a unix socket while Prometheus and the kubelet use TCP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from metrics import Metrics, metrics_handler
from sidecar.offload.orphan_pods import OrphanPods
from sidecar.remote.health import RemoteHealth
from tunnel.manager import TunnelManager


@dataclass(slots=True)
class ProcessState:
    """What the probes report. ``alive`` is filled by the lifecycle owner."""

    stopping: bool = False
    alive: Callable[[], dict[str, bool]] = field(default=lambda: {})


STATE_KEY = web.AppKey("state", ProcessState)
HEALTH_KEY = web.AppKey("health", RemoteHealth)
TUNNELS_KEY = web.AppKey("tunnels", TunnelManager)
ORPHANS_KEY = web.AppKey("orphans", OrphanPods)


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
    tunnels = request.app.get(TUNNELS_KEY)
    if tunnels is not None and not tunnels.connected:
        return web.Response(status=503, text="tunnel gateway not connected\n")
    return web.Response(text="ok\n")


async def tunnels_view(request: web.Request) -> web.Response:
    """The pod port -> gateway port mapping, with each tunnel's state and reason."""
    tunnels = request.app.get(TUNNELS_KEY)
    body = {
        "enabled": tunnels is not None,
        "gateway_connected": bool(tunnels and tunnels.connected),
        "tunnels": [t.as_json() for t in tunnels.snapshot()] if tunnels else [],
    }
    return web.json_response(body)


async def orphans_view(request: web.Request) -> web.Response:
    """Remote pods judged orphaned (local pod gone, its /delete never came): each with
    its evidence, when it was first seen and when it will be reaped; and the sweep's
    state (policy, window, whether interLink's questions can be judged right now)."""
    orphans = request.app.get(ORPHANS_KEY)
    if orphans is None:
        return web.json_response({"enabled": False, "orphans": []})
    return web.json_response({"enabled": True, **orphans.report()})


def make_ops_app(
    *,
    state: ProcessState,
    health: RemoteHealth,
    metrics: Metrics,
    tunnels: TunnelManager | None = None,
    orphans: OrphanPods | None = None,
) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state
    app[HEALTH_KEY] = health
    if tunnels is not None:
        app[TUNNELS_KEY] = tunnels
    if orphans is not None:
        app[ORPHANS_KEY] = orphans
    app.router.add_get("/tunnels", tunnels_view)
    app.router.add_get("/orphans", orphans_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler(metrics.registry))
    return app
