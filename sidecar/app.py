"""The lifecycle owner: builds everything from the settings, runs the root tasks, stops them.

Root tasks (see shared/DESIGN.md): the plugin API server, the ops server, the remote
prober (reachability and node capacity), the remote watcher (status cache) and the
janitor (journalled deletes, the orphan sweep and the orphan-pod sweep), and the tunnel
manager when tunnels are on. If any of them ends, the process logs why and exits 1 so
Kubernetes restarts it.

``run`` does it in four steps, each a function: ``build`` the object graph from the
settings, ``listen`` (plugin API and ops server), ``start_root_tasks``, and after a stop
request the shutdown ladder of ``shutdown_steps``.

SIGTERM or SIGINT start the shutdown ladder, all inside ``app.shutdown_timeout_seconds``
(default 25 s, under Kubernetes' 30 s grace period) by construction (sidecar/shutdown.py):
readiness turns 503 first, then the background tasks stop, then the plugin API stops
accepting and lets in-flight calls finish, then the ops server, then the API clients
close. Exit status 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics

from metrics import Metrics, make_metrics, register_phase_collector
from sidecar import __version__, insecure
from sidecar.api.server import make_plugin_app
from sidecar.listeners import ListenError, bound_tcp_port, start_sites
from sidecar.liveness import dead_letters, faults
from sidecar.memory import TRIM_INTERVAL_SECONDS, trim_forever
from sidecar.offload.janitor import RetryPolicy, run_janitor
from sidecar.offload.journal import DeleteJournal, JournalError
from sidecar.offload.local_pods import LocalPodReader, LocalReadError
from sidecar.offload.orphan_pods import OrphanPods, liveness_gap
from sidecar.offload.service import Offloader
from sidecar.ops import ProcessState, make_ops_app
from sidecar.remote.capacity import ping_resources, selector_string
from sidecar.remote.client import KubeconfigError, make_api_client
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.health import RemoteHealth, probe_forever, storage_read
from sidecar.settings import Capacity, Settings, TunnelPods
from sidecar.shutdown import Step, run_ladder
from sidecar.status.asked import ASKED_KEY, AskedLog
from sidecar.status.cache import StatusCache
from sidecar.status.watcher import Watcher
from sidecar.supervision import RootTasks, serve_until_cancelled
from sidecar.tunnels import TunnelConfigError, feed_forever, make_dialer, tunnel_config
from tunnel.manager import TunnelManager

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_TASK_ENDED = 1
EXIT_CONFIG = 2

# How often the remote API server is checked (a read from its storage; the ping,
# /create and /readyz's body read the verdict).
PROBE_INTERVAL_SECONDS = 5.0


# Shares of ``app.shutdown_timeout_seconds`` for the ladder's steps (sidecar/shutdown.py:
# they add up to 1, so the ladder fits the budget whatever each step does).
BACKGROUND_SHARE = 0.1  # watcher, prober, janitor, tunnels: cancelled together
PLUGIN_API_SHARE = 0.7  # stop accepting, let in-flight calls finish, close connections
IN_FLIGHT_SHARE = 0.6  # of it, the wait for in-flight calls (aiohttp's shutdown_timeout)
OPS_SHARE = 0.1  # /readyz already answers 503; scrapes in flight finish
CLIENTS_SHARE = 0.1  # the remote (and local) API clients' sessions
OPS_IN_FLIGHT_SECONDS = 1.0

BACKGROUND_TASKS = [
    "tunnel-feeder",
    "tunnel-manager",
    "remote-watcher",
    "remote-prober",
    "janitor",
    "memory-trimmer",
]


@dataclass(slots=True)
class Parts:
    """The object graph one process runs, built from the settings by ``build``."""

    settings: Settings
    metrics: Metrics
    journal: DeleteJournal
    remote: RemoteCluster
    cache: StatusCache
    health: RemoteHealth
    watcher: Watcher
    offloader: Offloader
    asked: AskedLog
    orphan_pods: OrphanPods
    tunnels: TunnelManager | None
    clients: AsyncExitStack
    """Closes the API clients (remote, local): the ladder's last step."""


@dataclass(slots=True)
class Servers:
    """The two HTTP servers, listening."""

    plugin: web.AppRunner
    ops: web.AppRunner
    state: ProcessState
    """What /healthz and /readyz report."""
    urls: list[str]
    ops_port: int


async def run(
    settings: Settings, *, on_ready: Callable[[list[str], int], None] | None = None
) -> int:
    """Run the sidecar until SIGTERM/SIGINT or until a root task ends; returns the exit code.

    ``on_ready(plugin_urls, ops_port)`` is called once everything listens.
    """
    started = time.monotonic()
    clients = AsyncExitStack()
    tasks = RootTasks()
    try:
        parts = await build(settings, clients)
        servers = await listen(parts, tasks)
    except (KubeconfigError, JournalError, TunnelConfigError, LocalReadError, ListenError) as exc:
        logger.error("%s", exc)  # each names the key to fix
        await clients.aclose()
        return EXIT_CONFIG
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    start_root_tasks(parts, servers, tasks)
    await _announce(settings, servers)
    if on_ready is not None:
        on_ready(servers.urls, servers.ops_port)

    exit_info = await tasks.wait_first_exit(stop)
    stopping_at = time.monotonic()
    budget = settings.app.shutdown_timeout_seconds
    if exit_info.task is None:
        logger.info("stop requested: shutting down (budget %.0f s)", budget)
    servers.state.stopping = True  # /readyz answers 503 from here on
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    await run_ladder(shutdown_steps(parts, tasks), budget=budget)
    for name in tasks.names():
        parts.metrics.root_task_up.labels(name).set(0)
    logger.info(
        "stopped in %.2f s (ran %.0f s)",
        time.monotonic() - stopping_at,
        stopping_at - started,
    )
    return EXIT_OK if exit_info.task is None else EXIT_TASK_ENDED


async def build(settings: Settings, clients: AsyncExitStack) -> Parts:
    """Make every object the process runs; the API clients made are pushed on ``clients``
    (so a failure half-way closes what exists). Raises the start errors that exit 2."""
    journal = DeleteJournal(
        Path(settings.app.state_dir), tombstone_seconds=settings.app.delete_tombstone_seconds
    )
    journal.load()
    # Process-wide: no "<counter>_created" gauge next to every counter and histogram in
    # the text format (twice the series, and nothing a dashboard of this process uses).
    disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = make_metrics(CollectorRegistry(), version=__version__)
    api_client = await make_api_client(settings.k8s, metrics=metrics)
    clients.push_async_callback(api_client.close)
    probe_client = await make_api_client(settings.k8s, metrics=metrics)
    clients.push_async_callback(probe_client.close)
    remote = RemoteCluster(
        api_client, timeout=settings.k8s.request_timeout_seconds, probe_client=probe_client
    )
    tunnels: TunnelManager | None = None
    if settings.tcp_tunnel.enabled:
        tunnels = TunnelManager(
            tunnel_config(settings.tcp_tunnel),
            make_dialer(settings.tcp_tunnel, api_client, metrics=metrics),
            metrics=metrics,
        )
    local_pods: LocalPodReader | None = None
    if settings.k8s.local_kubeconfig_path:
        local_pods = await LocalPodReader.from_kubeconfig(
            settings.k8s.local_kubeconfig_path, timeout=settings.k8s.request_timeout_seconds
        )
        clients.push_async_callback(local_pods.close)
    metrics.pending_deletes.set_function(lambda: len(journal))
    metrics.dead_deletes.set_function(journal.dead_count)
    metrics.journal_writable.set_function(lambda: 0 if journal.problem else 1)
    cache = StatusCache()
    metrics.cache_pods.set_function(lambda: len(cache))
    metrics.cache_age.set_function(cache.age_seconds)
    register_phase_collector(metrics.registry, cache.phases)
    health = RemoteHealth()
    # The prober's recoveries end the watcher's backoff sleep (and it asks for a check).
    watcher = Watcher(remote, cache, settings=settings.k8s, metrics=metrics, health=health)
    metrics.watch_progress_age.set_function(watcher.progress_age)
    offloader = Offloader(
        cache=cache,
        remote=remote,
        journal=journal,
        offloading=settings.offloading,
        mesh=settings.mesh,
        k8s=settings.k8s,
        metrics=metrics,
        create_deadline=settings.app.create_deadline_seconds,
    )
    if len(journal):
        logger.info("%d delete(s) from before the restart are pending", len(journal))
    window = settings.offloading.orphan_after_seconds
    asked = AskedLog(gap=liveness_gap(window))
    orphan_pods = OrphanPods(
        cache=cache,
        asked=asked,
        offloader=offloader,
        metrics=metrics,
        window=window,
        policy=settings.offloading.orphan_policy,
        local=local_pods,
    )
    return Parts(
        settings=settings,
        metrics=metrics,
        journal=journal,
        remote=remote,
        cache=cache,
        health=health,
        watcher=watcher,
        offloader=offloader,
        asked=asked,
        orphan_pods=orphan_pods,
        tunnels=tunnels,
        clients=clients,
    )


async def listen(parts: Parts, tasks: RootTasks) -> Servers:
    """Bind the plugin API and the ops server (raises ListenError naming the key)."""
    settings = parts.settings
    state = ProcessState(
        alive=tasks.alive,
        faults=lambda: faults(parts.watcher, parts.health, parts.journal, settings),
        notes=lambda: dead_letters(parts.journal),
    )
    plugin_app = make_plugin_app(
        remote=parts.remote,
        offloader=parts.offloader,
        cache=parts.cache,
        health=parts.health,
        offloading=settings.offloading,
        metrics=parts.metrics,
        log_requests=settings.log.requests_enabled,
        max_concurrent_requests=settings.app.max_concurrent_requests,
        body_timeout=settings.app.request_body_timeout_seconds,
    )
    plugin_app[ASKED_KEY] = parts.asked  # the handlers record what interLink asks about
    plugin = web.AppRunner(
        plugin_app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=settings.app.shutdown_timeout_seconds * IN_FLIGHT_SHARE,
        # aiohttp closes a connection that has not completed a request within this many
        # seconds of opening or of its previous answer: a client sending its headers a
        # byte at a time cannot hold a connection (interLink sends whole requests).
        keepalive_timeout=settings.app.request_header_timeout_seconds,
    )
    ops = web.AppRunner(
        make_ops_app(
            state=state,
            health=parts.health,
            metrics=parts.metrics,
            tunnels=parts.tunnels,
            orphans=parts.orphan_pods,
        ),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=OPS_IN_FLIGHT_SECONDS,
    )
    await plugin.setup()
    await ops.setup()
    try:
        urls = await start_sites(plugin, settings.app.listen, socket_mode=settings.app.socket_mode)
        ops_site = web.TCPSite(ops, settings.app.ops_address, settings.app.ops_port)
        try:
            await ops_site.start()
        except OSError as exc:
            raise ListenError(
                f"app.ops_port: cannot listen on {settings.app.ops_address}:"
                f"{settings.app.ops_port}: {exc}"
            ) from None
    except ListenError:
        await plugin.cleanup()
        await ops.cleanup()
        raise
    return Servers(plugin=plugin, ops=ops, state=state, urls=urls, ops_port=bound_tcp_port(ops))


def start_root_tasks(parts: Parts, servers: Servers, tasks: RootTasks) -> None:
    """Start every root task (supervision.py: any one ending ends the process)."""
    settings, remote, metrics = parts.settings, parts.remote, parts.metrics
    tasks.start("plugin-api-server", serve_until_cancelled(servers.plugin.cleanup))
    tasks.start("ops-server", serve_until_cancelled(servers.ops.cleanup))

    async def measure_capacity() -> dict[str, object]:
        nodes = await remote.list_nodes(selector_string(settings.offloading.node_selector))
        free = settings.offloading.capacity is Capacity.FREE
        return ping_resources(
            nodes,
            await remote.list_pods_on_nodes() if free else None,
            tolerations=settings.offloading.node_tolerations,
        )

    tasks.start(
        "remote-prober",
        probe_forever(
            parts.health,
            storage_read(remote),
            interval=PROBE_INTERVAL_SECONDS,
            measure=measure_capacity,
            on_change=lambda up: metrics.remote_up.set(1 if up else 0),
            served_since=remote.served_since,
        ),
    )
    tasks.start("remote-watcher", parts.watcher.watch_forever())
    tasks.start("memory-trimmer", trim_forever(TRIM_INTERVAL_SECONDS))
    if parts.tunnels is not None:
        tasks.start("tunnel-manager", parts.tunnels.run())
        tasks.start(
            "tunnel-feeder",
            feed_forever(
                parts.cache,
                parts.tunnels,
                annotated_only=settings.tcp_tunnel.pods is TunnelPods.ANNOTATED,
            ),
        )
    tasks.start(
        "janitor",
        run_janitor(
            parts.offloader,
            parts.journal,
            policy=RetryPolicy(
                max_backoff=settings.app.janitor_max_backoff_seconds,
                max_attempts=settings.app.janitor_max_attempts,
                give_up_after=settings.app.delete_give_up_seconds,
            ),
            metrics=metrics,
            orphan_pods=parts.orphan_pods,
        ),
    )
    for name in tasks.names():
        metrics.root_task_up.labels(name).set(1)


def shutdown_steps(parts: Parts, tasks: RootTasks) -> list[Step]:
    """The ladder after /readyz turned 503: background work, then the plugin API (its
    in-flight calls finish), then the ops server, then the API clients."""

    async def background(seconds: float) -> None:
        await tasks.stop(BACKGROUND_TASKS, timeout=seconds)

    async def plugin_api(seconds: float) -> None:
        await tasks.stop(["plugin-api-server"], timeout=seconds)

    async def ops(seconds: float) -> None:
        await tasks.stop(["ops-server"], timeout=seconds)

    async def clients(seconds: float) -> None:
        await parts.clients.aclose()

    return [
        Step("background tasks", BACKGROUND_SHARE, background),
        Step("plugin API", PLUGIN_API_SHARE, plugin_api),
        Step("ops server", OPS_SHARE, ops),
        Step("API clients", CLIENTS_SHARE, clients),
    ]


async def _announce(settings: Settings, servers: Servers) -> None:
    logger.info(
        "%s %s serving the plugin API on %s, ops on http://%s:%d (config: %s)",
        settings.app.name,
        __version__,
        ", ".join(servers.urls),
        settings.app.ops_address,
        servers.ops_port,
        settings.source,
    )
    await insecure.warn_at_start(settings)
    if settings.ignored_keys:
        logger.info("accepted for compatibility, no effect: %s", ", ".join(settings.ignored_keys))
