"""The ops server: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``,
``/tunnels`` (the tunnel mapping) and ``/orphans`` (orphaned remote pods).

Separate from the plugin API so probes and scrapes never queue behind interLink calls,
and so the plugin API can stay on a unix socket while Prometheus and the kubelet use TCP.

What the probes mean (the chart's probes follow this):

* ``/healthz``, liveness: the process works. 503 when a root task ended, or when one
  runs without getting anywhere: the watcher made no progress for
  ``k8s.watch_stall_seconds`` while the remote API server served reads (e.g. its
  ``watch`` right is missing: it restarts for ever), or the delete journal cannot be
  written (full or read-only ``app.state_dir``: deletes can no longer be promised).
  These are faults of this process or its volume, which a restart (a remounted
  volume, a fresh watch) may cure, and which an operator must see. Deletes given up
  on (dead-letter) are listed in the body but do not fail it: a restart cannot
  remove a finalizer.
* ``/readyz``, readiness: the process serves the plugin API. 503 only while it
  starts (until the first remote check has finished, at most a few seconds) and once
  it shuts down. The remote API server's and the tunnel gateway's health are in the
  body (still 200), in the ping and in metrics: readiness that followed them would
  take the Service endpoint away exactly when interLink's ``/delete`` calls must reach
  the journal, and interLink never retries a delete.
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
    """What the probes report; the callables are filled by the lifecycle owner."""

    stopping: bool = False
    alive: Callable[[], dict[str, bool]] = field(default=lambda: {})
    """Root task name -> still running."""
    faults: Callable[[], list[str]] = field(default=lambda: [])
    """Why the process does not work although its root tasks run (fails /healthz)."""
    notes: Callable[[], list[str]] = field(default=lambda: [])
    """What an operator should see in /healthz's body without failing it."""


STATE_KEY = web.AppKey("state", ProcessState)
HEALTH_KEY = web.AppKey("health", RemoteHealth)
TUNNELS_KEY = web.AppKey("tunnels", TunnelManager)
ORPHANS_KEY = web.AppKey("orphans", OrphanPods)


def _text(status: int, head: str, lines: list[str]) -> web.Response:
    return web.Response(status=status, text="".join(f"{line}\n" for line in [head, *lines]))


async def healthz(request: web.Request) -> web.Response:
    """200 while every root task runs and makes progress; 503 names what does not."""
    state = request.app[STATE_KEY]
    dead = sorted(name for name, alive in state.alive().items() if not alive)
    faults = ([f"root task(s) ended: {', '.join(dead)}"] if dead else []) + state.faults()
    if faults:
        return _text(503, "unhealthy", faults)
    return _text(200, "ok", state.notes())


async def readyz(request: web.Request) -> web.Response:
    """200 while the plugin API serves (after the first remote check, until shutdown);
    the body says how the remote API server and the tunnel gateway are."""
    state, health = request.app[STATE_KEY], request.app[HEALTH_KEY]
    if state.stopping:
        return _text(503, "shutting down", [])
    if not health.checked:
        return _text(503, "starting: the first remote check has not finished", [])
    details = [health.describe()]
    tunnels = request.app.get(TUNNELS_KEY)
    if tunnels is not None:
        details.append(
            "tunnel gateway connected" if tunnels.connected else "tunnel gateway not connected"
        )
    return _text(200, "ok", details)


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
