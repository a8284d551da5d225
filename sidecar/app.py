"""The lifecycle owner: builds everything from the settings, runs the root tasks, stops them.

Root tasks (see shared/DESIGN.md): the plugin API server, the ops server, the remote
prober (reachability and node capacity), the remote watcher (status cache) and the
janitor (journalled deletes, the orphan sweep and the orphan-pod sweep), and the tunnel
manager when tunnels are on. If any of them ends, the process logs why and exits 1 so
Kubernetes restarts it.

SIGTERM or SIGINT start the shutdown ladder, all inside ``app.shutdown_timeout_seconds``
(default 25 s, under Kubernetes' 30 s grace period): readiness turns 503 first, then the
prober stops, then the plugin API stops accepting and lets in-flight calls finish, then
the ops server, then the remote client. Exit status 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics

from metrics import make_metrics, register_phase_collector
from sidecar import __version__, insecure
from sidecar.api.server import make_plugin_app
from sidecar.listeners import ListenError, bound_tcp_port, start_sites
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
from sidecar.settings import Settings
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


async def run(
    settings: Settings, *, on_ready: Callable[[list[str], int], None] | None = None
) -> int:
    """Run the sidecar until SIGTERM/SIGINT or until a root task ends; returns the exit code.

    ``on_ready(plugin_urls, ops_port)`` is called once everything listens.
    """
    started = time.monotonic()
    journal = DeleteJournal(
        Path(settings.app.state_dir), tombstone_seconds=settings.app.delete_tombstone_seconds
    )
    # Process-wide: no "<counter>_created" gauge next to every counter and histogram in
    # the text format (twice the series, and nothing a dashboard of this process uses).
    disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = make_metrics(CollectorRegistry(), version=__version__)
    try:
        journal.load()
        api_client = await make_api_client(settings.k8s, metrics=metrics)
        probe_client = await make_api_client(settings.k8s, metrics=metrics)
    except (KubeconfigError, JournalError) as exc:
        logger.error("%s", exc)
        return EXIT_CONFIG
    remote = RemoteCluster(
        api_client, timeout=settings.k8s.request_timeout_seconds, probe_client=probe_client
    )
    tunnels: TunnelManager | None = None
    if settings.tcp_tunnel.enabled:
        try:
            tunnels = TunnelManager(
                tunnel_config(settings.tcp_tunnel),
                make_dialer(settings.tcp_tunnel, api_client, metrics=metrics),
                metrics=metrics,
            )
        except TunnelConfigError as exc:
            logger.error("%s", exc)
            await remote.close()
            return EXIT_CONFIG
    local_pods: LocalPodReader | None = None
    if settings.k8s.local_kubeconfig_path:
        try:
            local_pods = await LocalPodReader.from_kubeconfig(
                settings.k8s.local_kubeconfig_path, timeout=settings.k8s.request_timeout_seconds
            )
        except LocalReadError as exc:
            logger.error("%s", exc)
            await remote.close()
            return EXIT_CONFIG
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
    tasks = RootTasks()
    state = ProcessState(
        alive=tasks.alive,
        faults=lambda: _faults(watcher, health, journal, settings),
        notes=lambda: _dead_letters(journal),
    )

    budget = settings.app.shutdown_timeout_seconds
    plugin_app = make_plugin_app(
        remote=remote,
        offloader=offloader,
        cache=cache,
        health=health,
        offloading=settings.offloading,
        metrics=metrics,
        log_requests=settings.log.requests_enabled,
        max_concurrent_requests=settings.app.max_concurrent_requests,
        body_timeout=settings.app.request_body_timeout_seconds,
    )
    plugin_app[ASKED_KEY] = asked  # the handlers record what interLink asks about
    plugin_runner = web.AppRunner(
        plugin_app,
        handle_signals=False,
        access_log=None,
        # In-flight calls get most of the budget; the rest of the ladder is quick.
        shutdown_timeout=budget * 0.6,
        # aiohttp closes a connection that has not completed a request within this many
        # seconds of opening or of its previous answer: a client sending its headers a
        # byte at a time cannot hold a connection (interLink sends whole requests).
        keepalive_timeout=settings.app.request_header_timeout_seconds,
    )
    ops_runner = web.AppRunner(
        make_ops_app(
            state=state, health=health, metrics=metrics, tunnels=tunnels, orphans=orphan_pods
        ),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=1.0,
    )
    await plugin_runner.setup()
    await ops_runner.setup()
    try:
        urls = await start_sites(
            plugin_runner, settings.app.listen, socket_mode=settings.app.socket_mode
        )
        ops_site = web.TCPSite(ops_runner, settings.app.ops_address, settings.app.ops_port)
        try:
            await ops_site.start()
        except OSError as exc:
            raise ListenError(
                f"app.ops_port: cannot listen on {settings.app.ops_address}:"
                f"{settings.app.ops_port}: {exc}"
            ) from None
    except ListenError as exc:
        logger.error("%s", exc)
        await plugin_runner.cleanup()
        await ops_runner.cleanup()
        await remote.close()
        if local_pods is not None:
            await local_pods.close()
        return EXIT_CONFIG
    ops_port = bound_tcp_port(ops_runner)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    tasks.start("plugin-api-server", serve_until_cancelled(plugin_runner.cleanup))
    tasks.start("ops-server", serve_until_cancelled(ops_runner.cleanup))

    async def measure_capacity() -> dict[str, object]:
        nodes = await remote.list_nodes(selector_string(settings.offloading.node_selector))
        free = settings.offloading.capacity == "free"
        return ping_resources(nodes, await remote.list_pods_on_nodes() if free else None)

    tasks.start(
        "remote-prober",
        probe_forever(
            health,
            storage_read(remote),
            interval=PROBE_INTERVAL_SECONDS,
            measure=measure_capacity,
            on_change=lambda up: metrics.remote_up.set(1 if up else 0),
            served_since=remote.served_since,
        ),
    )
    tasks.start("remote-watcher", watcher.watch_forever())
    tasks.start("memory-trimmer", trim_forever(TRIM_INTERVAL_SECONDS))
    if tunnels is not None:
        tasks.start("tunnel-manager", tunnels.run())
        tasks.start(
            "tunnel-feeder",
            feed_forever(cache, tunnels, annotated_only=settings.tcp_tunnel.pods == "annotated"),
        )
    tasks.start(
        "janitor",
        run_janitor(
            offloader,
            journal,
            policy=RetryPolicy(
                max_backoff=settings.app.janitor_max_backoff_seconds,
                max_attempts=settings.app.janitor_max_attempts,
                give_up_after=settings.app.delete_give_up_seconds,
            ),
            metrics=metrics,
            orphan_pods=orphan_pods,
        ),
    )
    for name in tasks.names():
        metrics.root_task_up.labels(name).set(1)
    logger.info(
        "%s %s serving the plugin API on %s, ops on http://%s:%d (config: %s)",
        settings.app.name,
        __version__,
        ", ".join(urls),
        settings.app.ops_address,
        ops_port,
        settings.source,
    )
    await insecure.warn_at_start(settings)
    if settings.ignored_keys:
        logger.info("accepted for compatibility, no effect: %s", ", ".join(settings.ignored_keys))
    if on_ready is not None:
        on_ready(urls, ops_port)

    exit_info = await tasks.wait_first_exit(stop)
    stopping_at = time.monotonic()
    if exit_info.task is None:
        logger.info("stop requested: shutting down (budget %.0f s)", budget)
    state.stopping = True  # /readyz answers 503 from here on
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    try:
        await tasks.stop(
            [
                "tunnel-feeder",
                "tunnel-manager",
                "remote-watcher",
                "remote-prober",
                "janitor",
                "memory-trimmer",
            ],
            timeout=budget * 0.1,
        )
        await tasks.stop(["plugin-api-server"], timeout=budget * 0.7)
        await tasks.stop(["ops-server"], timeout=budget * 0.1)
    finally:
        await remote.close()
        if local_pods is not None:
            await local_pods.close()
    for name in tasks.names():
        metrics.root_task_up.labels(name).set(0)
    logger.info(
        "stopped in %.2f s (ran %.0f s)",
        time.monotonic() - stopping_at,
        stopping_at - started,
    )
    return EXIT_OK if exit_info.task is None else EXIT_TASK_ENDED


def _faults(
    watcher: Watcher, health: RemoteHealth, journal: DeleteJournal, settings: Settings
) -> list[str]:
    """Liveness beyond "every root task runs" (see ``sidecar.ops``)."""
    faults = []
    stall = watcher.stall(
        serving_since=health.since if health.up else None,
        window=settings.k8s.watch_stall_seconds,
    )
    if stall is not None:
        faults.append(stall)
    if journal.problem is not None:
        faults.append(f"janitor: {journal.problem}")
    return faults


_DEAD_LISTED = 10


def _dead_letters(journal: DeleteJournal) -> list[str]:
    """The deletes given up on, for /healthz's body (not a liveness failure: a restart
    cannot remove what blocks them)."""
    dead = journal.dead()
    if not dead:
        return []
    lines = [
        f"janitor: {len(dead)} delete(s) given up on (dead-letter), kept in {journal.path}; "
        "tried again hourly and at each start, at once on a new /delete of the pod"
    ]
    for entry in dead[:_DEAD_LISTED]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.dead_since or 0))
        lines.append(
            f"  pod {entry.name} (uid {entry.pod_uid}) in namespace {entry.namespace}, "
            f"given up at {stamp} after {entry.attempts} attempt(s): "
            f"{entry.last_error or 'not finished'}"
        )
    if len(dead) > _DEAD_LISTED:
        lines.append(f"  ... and {len(dead) - _DEAD_LISTED} more")
    return lines
