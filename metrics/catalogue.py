"""The metric catalogue: every metric the process exports, on a registry passed in.

Names follow ``<namespace>_<subsystem>_<name>_<unit>`` with base units (seconds, bytes);
counters get ``_total`` at exposition. Labels come from closed sets (route, method,
status code, task name): never a pod uid or an error text. Library code never touches
prometheus-client's global registry, so tests build a fresh one each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

NAMESPACE = "sidecar"

# Plugin API latencies: /status is answered in milliseconds, /create may take seconds
# (namespace, pod), interLink gives up after 120 s.
_API_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry
    build_info: Info
    api_requests: Counter
    """Plugin API requests by route, method and HTTP status code."""
    api_request_duration: Histogram
    """Plugin API request duration by route (time to the response headers)."""
    remote_up: Gauge
    """1 when the last reachability check of the remote API server succeeded."""
    root_task_up: Gauge
    """1 while a root task of the process runs."""
    creates: Counter
    """/create outcomes: created, existing (idempotent repeat), invalid, failed."""
    deletes: Counter
    """/delete outcomes: done at once, or deferred to the janitor."""
    janitor_retries: Counter
    """Cleanup attempts of journalled deletes that did not finish."""
    pending_deletes: Gauge
    """Deletes in the journal, not finished yet."""
    watch_events: Counter
    """Remote pod watch events by type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR)."""
    watch_restarts: Counter
    """Watch restarts by reason (gone, inactivity, unreachable, error)."""
    status_propagation: Histogram
    """Remote change (its last managedFields time) to status cache update, seconds."""
    cache_pods: Gauge
    """Pods in the status cache."""
    cache_age: Gauge
    """Seconds since the status cache last heard from the watch (event or bookmark)."""
    log_streams: Gauge
    """Open /getLogs streams."""
    tunnels: Gauge
    """Tunnels by state (pending, open, error)."""
    tunnel_connections: Gauge
    """Connections being forwarded right now."""
    tunnel_bytes: Counter
    """Bytes forwarded, by direction (to_pod, from_pod)."""
    tunnel_connection_errors: Counter
    """Tunnel errors by reason (host_key, auth, timeout, connect, dial)."""
    ssh_reconnects: Counter
    """Gateway connections lost (each followed by a reconnect)."""
    gateway_connected: Gauge
    """1 while the SSH connection to the gateway is up."""


def make_metrics(registry: CollectorRegistry, *, version: str) -> Metrics:
    """Register the catalogue on ``registry``."""
    build_info = Info("build", "Build information", namespace=NAMESPACE, registry=registry)
    build_info.info({"version": version})
    return Metrics(
        registry=registry,
        build_info=build_info,
        api_requests=Counter(
            "requests",
            "Plugin API requests by route, method and status code",
            ["route", "method", "code"],
            namespace=NAMESPACE,
            subsystem="api",
            registry=registry,
        ),
        api_request_duration=Histogram(
            "request_duration_seconds",
            "Plugin API request duration until the response headers",
            ["route"],
            namespace=NAMESPACE,
            subsystem="api",
            buckets=_API_BUCKETS,
            registry=registry,
        ),
        remote_up=Gauge(
            "up",
            "1 when the remote API server answered the last reachability check",
            namespace=NAMESPACE,
            subsystem="remote",
            registry=registry,
        ),
        root_task_up=Gauge(
            "root_task_up",
            "1 while the root task runs",
            ["task"],
            namespace=NAMESPACE,
            subsystem="process",
            registry=registry,
        ),
        creates=Counter(
            "creates",
            "Pod creates by outcome",
            ["outcome"],
            namespace=NAMESPACE,
            subsystem="offload",
            registry=registry,
        ),
        deletes=Counter(
            "deletes",
            "Pod deletes by outcome",
            ["outcome"],
            namespace=NAMESPACE,
            subsystem="offload",
            registry=registry,
        ),
        janitor_retries=Counter(
            "retries",
            "Cleanup attempts of journalled deletes that did not finish",
            namespace=NAMESPACE,
            subsystem="janitor",
            registry=registry,
        ),
        watch_events=Counter(
            "events",
            "Remote pod watch events by type",
            ["type"],
            namespace=NAMESPACE,
            subsystem="watch",
            registry=registry,
        ),
        watch_restarts=Counter(
            "restarts",
            "Watch restarts by reason",
            ["reason"],
            namespace=NAMESPACE,
            subsystem="watch",
            registry=registry,
        ),
        status_propagation=Histogram(
            "propagation_delay_seconds",
            "Remote pod change to status cache update",
            namespace=NAMESPACE,
            subsystem="status",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        ),
        cache_pods=Gauge(
            "cache_pods",
            "Pods in the status cache",
            namespace=NAMESPACE,
            subsystem="status",
            registry=registry,
        ),
        cache_age=Gauge(
            "cache_age_seconds",
            "Seconds since the watch last updated the status cache",
            namespace=NAMESPACE,
            subsystem="status",
            registry=registry,
        ),
        log_streams=Gauge(
            "streams",
            "Open /getLogs streams",
            namespace=NAMESPACE,
            subsystem="logs",
            registry=registry,
        ),
        tunnels=Gauge(
            "tunnels",
            "Tunnels by state",
            ["state"],
            namespace=NAMESPACE,
            subsystem="tunnel",
            registry=registry,
        ),
        tunnel_connections=Gauge(
            "active_connections",
            "Connections being forwarded",
            namespace=NAMESPACE,
            subsystem="tunnel",
            registry=registry,
        ),
        tunnel_bytes=Counter(
            "bytes",
            "Bytes forwarded by direction",
            ["direction"],
            namespace=NAMESPACE,
            subsystem="tunnel",
            registry=registry,
        ),
        tunnel_connection_errors=Counter(
            "errors",
            "Tunnel errors by reason",
            ["reason"],
            namespace=NAMESPACE,
            subsystem="tunnel",
            registry=registry,
        ),
        ssh_reconnects=Counter(
            "ssh_reconnects",
            "Gateway connections lost",
            namespace=NAMESPACE,
            subsystem="tunnel",
            registry=registry,
        ),
        gateway_connected=Gauge(
            "gateway_connected",
            "1 while the gateway connection is up",
            namespace=NAMESPACE,
            subsystem="tunnel",
            registry=registry,
        ),
        pending_deletes=Gauge(
            "pending_deletes",
            "Deletes accepted and not finished yet",
            namespace=NAMESPACE,
            subsystem="janitor",
            registry=registry,
        ),
    )


class _PhaseCollector(Collector):
    """Offloaded pods by remote phase, counted at scrape time from the status cache."""

    def __init__(self, phases: Callable[[], Mapping[str, int]]) -> None:
        self._phases = phases

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{NAMESPACE}_remote_pods", "Offloaded pods by remote phase", labels=["phase"]
        )
        for phase, count in sorted(self._phases().items()):
            family.add_metric([phase], count)
        yield family


def register_phase_collector(
    registry: CollectorRegistry, phases: Callable[[], Mapping[str, int]]
) -> None:
    registry.register(_PhaseCollector(phases))
