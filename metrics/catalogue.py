"""The metric catalogue: every metric the process exports, on a registry passed in.

Names follow ``<namespace>_<subsystem>_<name>_<unit>`` with base units (seconds, bytes);
counters get ``_total`` at exposition. Every label takes its values from a closed set,
listed in the field docstrings of ``Metrics`` (route, method, status code, verb, task
name, ...): never a pod uid, a name, a namespace or an error text. Where a value comes
from outside the process (an HTTP method a client sent, a watch event type), the counter
clamps it: anything not in the set is counted as ``other``. Library code never touches
prometheus-client's global registry, so tests build a fresh one each.

Counters whose label sets are small are created at zero for every value, so a
dashboard's ``rate()`` has a series from the first scrape on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

NAMESPACE = "sidecar"
OTHER = "other"
"""The value a clamped label takes when the real one is not in its closed set."""

# --- the closed label sets -------------------------------------------------------------

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
HTTP_CODES = frozenset(str(code) for code in range(100, 600))
ERROR_CODE = "error"
"""``code`` of a remote call that got no HTTP answer (refused, reset, timed out)."""

REMOTE_VERBS = frozenset(
    {
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "connect",
        OTHER,
    }
)
"""Kubernetes API verbs (the API server's own names); ``connect``: exec, attach,
port-forward and proxy, websockets included."""

REMOTE_RESOURCES = frozenset(
    {
        "pods",
        "pods/log",
        "pods/status",
        "pods/portforward",
        "pods/exec",
        "pods/attach",
        "pods/proxy",
        "pods/eviction",
        "pods/binding",
        "pods/ephemeralcontainers",
        "namespaces",
        "namespaces/status",
        "namespaces/finalize",
        "configmaps",
        "secrets",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "persistentvolumes",
        "nodes",
        "nodes/status",
        "events",
        "services",
        "serviceaccounts",
        "endpoints",
        "version",
        OTHER,
    }
)
"""Remote resources (plural, ``/subresource``) a call can be counted under."""

CREATE_OUTCOMES = ("created", "existing", "invalid", "failed", "deleted_first")
DELETE_OUTCOMES = ("done", "deferred", "not_recorded")
WATCH_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR", OTHER})
WATCH_RESTART_REASONS = ("gone", "inactivity", "unreachable", "error", "bug")
ORPHAN_KINDS = ("ConfigMap", "Secret")
"""Kinds the object sweep reaps (``sidecar.offload.orphans``)."""
REAPED_KINDS = (*ORPHAN_KINDS, "Pod")
"""``kind`` of ``orphans_reaped``: the object sweep's kinds, and Pod (orphaned pods,
reaped with all their objects)."""
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
TUNNEL_DIRECTIONS = ("to_pod", "from_pod")
TUNNEL_ERROR_REASONS = ("host_key", "auth", "timeout", "connect", "dial")

# Plugin API latencies: /status is answered in milliseconds, /create may take seconds
# (namespace, pod), interLink gives up after 120 s.
_API_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Remote API calls: milliseconds on a healthy server, up to k8s.request_timeout_seconds.
_REMOTE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ClosedCounter(Counter):
    """A Counter whose ``closed`` labels only take values from their sets; any other
    value is counted as ``other``, so nobody outside the process can add series."""

    def __init__(
        self, *args: Any, closed: Mapping[str, Iterable[str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # Children (one per label set) are built by Counter.labels without ``closed``.
        self._closed = {name: frozenset(values) for name, values in (closed or {}).items()}

    def _clamp(self, name: str, value: object) -> str:
        allowed = self._closed.get(name)
        text = str(value)
        return text if allowed is None or text in allowed else OTHER

    def labels(self, *labelvalues: object, **labelkwargs: object) -> Self:
        if labelkwargs:
            labelkwargs = {name: self._clamp(name, v) for name, v in labelkwargs.items()}
        elif len(labelvalues) == len(self._labelnames):
            labelvalues = tuple(
                self._clamp(name, v) for name, v in zip(self._labelnames, labelvalues, strict=True)
            )
        return super().labels(*labelvalues, **labelkwargs)


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry
    build_info: Info
    """``sidecar_build_info{version}``: the running version (one series)."""
    api_requests: Counter
    """``sidecar_api_requests_total{route,method,code}``: plugin API requests. ``route``:
    the route's path (``/create``, ``/delete``, ``/status``, ``/getLogs``) or
    ``unmatched``; ``method``: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ``other``;
    ``code``: the HTTP status."""
    api_in_flight: Gauge
    """``sidecar_api_requests_in_flight``: plugin API requests being handled now (the
    figure ``app.max_concurrent_requests`` caps)."""
    api_request_duration: Histogram
    """``sidecar_api_request_duration_seconds{route}``: plugin API request duration until
    the response headers (``route`` as above)."""
    remote_requests: Counter
    """``sidecar_remote_requests_total{verb,resource,code}``: calls to the remote API
    server. ``verb``: ``REMOTE_VERBS``; ``resource``: ``REMOTE_RESOURCES`` (plural, with
    the subresource: ``pods/log``), ``other`` for anything else; ``code``: the HTTP
    status, ``error`` when no answer came. Watches and log streams count once."""
    remote_request_duration: Histogram
    """``sidecar_remote_request_duration_seconds{verb,resource}``: time to the response
    headers of a remote call (a watch or a followed log: until its stream starts);
    ``verb`` and ``resource`` as in ``remote_requests``."""
    remote_up: Gauge
    """``sidecar_remote_up``: 1 when the remote API server served the last check, a
    read from its storage (``sidecar.remote.health``)."""
    root_task_up: Gauge
    """``sidecar_process_root_task_up{task}``: 1 while a root task runs. ``task``: the
    root task names of ``sidecar/app.py`` (plugin-api-server, ops-server, remote-prober,
    remote-watcher, janitor, tunnel-manager, tunnel-feeder)."""
    creates: Counter
    """``sidecar_offload_creates_total{outcome}``: /create outcomes, ``CREATE_OUTCOMES``:
    created, existing (idempotent repeat), invalid (422 before any write), failed
    (remote failure, rolled back), deleted_first (refused: its /delete came first)."""
    deletes: Counter
    """``sidecar_offload_deletes_total{outcome}``: /delete outcomes, ``DELETE_OUTCOMES``:
    done at once, deferred to the janitor, or not_recorded (not finished and the journal
    could not be written: answered 503)."""
    janitor_retries: Counter
    """``sidecar_janitor_retries_total``: cleanup attempts of journalled deletes that did
    not finish."""
    pending_deletes: Gauge
    """``sidecar_janitor_pending_deletes``: deletes in the journal, not finished yet."""
    dead_deletes: Gauge
    """``sidecar_janitor_dead_deletes``: journalled deletes the janitor gave up on
    (dead-letter: retry cap or age reached), kept in the journal and listed in
    ``/healthz``."""
    journal_writable: Gauge
    """``sidecar_janitor_journal_writable``: 1 when the last write (or write check) of
    the delete journal worked; 0 fails ``/healthz``."""
    orphans_reaped: Counter
    """``sidecar_janitor_orphans_reaped_total{kind}``: remote objects of ours whose pod
    no longer exists, deleted by the janitor's sweep. ``kind``: ``REAPED_KINDS``
    (ConfigMap, Secret: copies left without a pod; Pod: orphaned remote pods, each
    reaped with all its objects, which are not counted again)."""
    orphan_pods: Gauge
    """``sidecar_janitor_orphan_pods``: remote pods judged orphaned (local pod gone,
    its /delete never came) at the last sweep and not reaped yet (see ``/orphans``)."""
    watch_events: Counter
    """``sidecar_watch_events_total{type}``: remote pod watch events, ``type``: ADDED,
    MODIFIED, DELETED, BOOKMARK, ERROR or ``other``."""
    watch_restarts: Counter
    """``sidecar_watch_restarts_total{reason}``: watch restarts, ``reason``:
    ``WATCH_RESTART_REASONS`` (gone, inactivity, unreachable, error, bug)."""
    status_propagation: Histogram
    """``sidecar_status_propagation_delay_seconds``: remote status change (its last
    managedFields time, second precision) to status cache update; observed only for
    events that change a pod's status (or add a pod), not for metadata-only updates."""
    cache_pods: Gauge
    """``sidecar_status_cache_pods``: pods in the status cache."""
    watch_progress_age: Gauge
    """``sidecar_watch_progress_age_seconds``: seconds since the watcher last made
    progress (a watch event, bookmark or accepted stream); ``/healthz`` fails when it
    passes ``k8s.watch_stall_seconds`` while the remote API server serves."""
    cache_age: Gauge
    """``sidecar_status_cache_age_seconds``: seconds since the status cache last heard
    from the watch (event or bookmark)."""
    log_streams: Gauge
    """``sidecar_logs_streams``: open /getLogs streams."""
    tunnels: Gauge
    """``sidecar_tunnel_tunnels{state}``: tunnels by state (pending, open, error)."""
    tunnel_connections: Gauge
    """``sidecar_tunnel_active_connections``: connections being forwarded right now."""
    tunnel_bytes: Counter
    """``sidecar_tunnel_bytes_total{direction}``: bytes forwarded, ``direction``: to_pod,
    from_pod."""
    tunnel_connection_errors: Counter
    """``sidecar_tunnel_errors_total{reason}``: tunnel errors, ``reason``:
    ``TUNNEL_ERROR_REASONS`` (host_key, auth, timeout, connect, dial)."""
    ssh_reconnects: Counter
    """``sidecar_tunnel_ssh_reconnects_total``: gateway connections lost (each followed by
    a reconnect)."""
    gateway_connected: Gauge
    """``sidecar_tunnel_gateway_connected``: 1 while the SSH connection to the gateway is
    up."""


def _zero(counter: Counter, values: Iterable[str]) -> Counter:
    """Create the series of every value of a one-label counter, at zero."""
    for value in values:
        counter.labels(value)
    return counter


def make_metrics(registry: CollectorRegistry, *, version: str) -> Metrics:
    """Register the catalogue on ``registry``."""
    build_info = Info(
        "build", "Build information: the running version", namespace=NAMESPACE, registry=registry
    )
    build_info.info({"version": version})
    return Metrics(
        registry=registry,
        build_info=build_info,
        api_requests=ClosedCounter(
            "requests",
            "Plugin API requests by route, method and HTTP status code",
            ["route", "method", "code"],
            namespace=NAMESPACE,
            subsystem="api",
            registry=registry,
            closed={"method": HTTP_METHODS | {OTHER}, "code": HTTP_CODES},
        ),
        api_in_flight=Gauge(
            "requests_in_flight",
            "Plugin API requests being handled now",
            namespace=NAMESPACE,
            subsystem="api",
            registry=registry,
        ),
        api_request_duration=Histogram(
            "request_duration_seconds",
            "Plugin API request duration until the response headers, in seconds",
            ["route"],
            namespace=NAMESPACE,
            subsystem="api",
            buckets=_API_BUCKETS,
            registry=registry,
        ),
        remote_requests=ClosedCounter(
            "requests",
            "Remote API server calls by verb, resource and HTTP status code "
            "(error: no answer); watches and log streams count once",
            ["verb", "resource", "code"],
            namespace=NAMESPACE,
            subsystem="remote",
            registry=registry,
            closed={
                "verb": REMOTE_VERBS,
                "resource": REMOTE_RESOURCES,
                "code": HTTP_CODES | {ERROR_CODE},
            },
        ),
        remote_request_duration=Histogram(
            "request_duration_seconds",
            "Remote API server call duration until the response headers, in seconds",
            ["verb", "resource"],
            namespace=NAMESPACE,
            subsystem="remote",
            buckets=_REMOTE_BUCKETS,
            registry=registry,
        ),
        remote_up=Gauge(
            "up",
            "1 when the remote API server served the last check (a read from its storage)",
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
        creates=_zero(
            Counter(
                "creates",
                "Pod creates by outcome (created, existing, invalid, failed, deleted_first)",
                ["outcome"],
                namespace=NAMESPACE,
                subsystem="offload",
                registry=registry,
            ),
            CREATE_OUTCOMES,
        ),
        deletes=_zero(
            Counter(
                "deletes",
                "Pod deletes by outcome (done, deferred to the janitor, not_recorded: 503)",
                ["outcome"],
                namespace=NAMESPACE,
                subsystem="offload",
                registry=registry,
            ),
            DELETE_OUTCOMES,
        ),
        janitor_retries=Counter(
            "retries",
            "Cleanup attempts of journalled deletes that did not finish",
            namespace=NAMESPACE,
            subsystem="janitor",
            registry=registry,
        ),
        pending_deletes=Gauge(
            "pending_deletes",
            "Deletes accepted and not finished yet",
            namespace=NAMESPACE,
            subsystem="janitor",
            registry=registry,
        ),
        dead_deletes=Gauge(
            "dead_deletes",
            "Journalled deletes given up on (dead-letter), kept in the journal",
            namespace=NAMESPACE,
            subsystem="janitor",
            registry=registry,
        ),
        journal_writable=Gauge(
            "journal_writable",
            "1 when the last write of the delete journal worked",
            namespace=NAMESPACE,
            subsystem="janitor",
            registry=registry,
        ),
        orphans_reaped=_zero(
            Counter(
                "orphans_reaped",
                "Remote objects of ours whose pod no longer exists, deleted by the janitor",
                ["kind"],
                namespace=NAMESPACE,
                subsystem="janitor",
                registry=registry,
            ),
            REAPED_KINDS,
        ),
        orphan_pods=Gauge(
            "orphan_pods",
            "Remote pods judged orphaned (local pod gone) and not reaped yet",
            namespace=NAMESPACE,
            subsystem="janitor",
            registry=registry,
        ),
        watch_events=ClosedCounter(
            "events",
            "Remote pod watch events by type",
            ["type"],
            namespace=NAMESPACE,
            subsystem="watch",
            registry=registry,
            closed={"type": WATCH_EVENT_TYPES},
        ),
        watch_restarts=_zero(
            Counter(
                "restarts",
                "Watch restarts by reason (gone, inactivity, unreachable, error, bug)",
                ["reason"],
                namespace=NAMESPACE,
                subsystem="watch",
                registry=registry,
            ),
            WATCH_RESTART_REASONS,
        ),
        status_propagation=Histogram(
            "propagation_delay_seconds",
            "Remote pod status change (managedFields time) to status cache update, in seconds",
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
        watch_progress_age=Gauge(
            "progress_age_seconds",
            "Seconds since the watcher last made progress (event, bookmark, accepted stream)",
            namespace=NAMESPACE,
            subsystem="watch",
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
            "Tunnels by state (pending, open, error)",
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
        tunnel_bytes=_zero(
            Counter(
                "bytes",
                "Bytes forwarded through tunnels by direction (to_pod, from_pod)",
                ["direction"],
                namespace=NAMESPACE,
                subsystem="tunnel",
                registry=registry,
            ),
            TUNNEL_DIRECTIONS,
        ),
        tunnel_connection_errors=Counter(
            "errors",
            "Tunnel errors by reason (host_key, auth, timeout, connect, dial)",
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
    )


class _PhaseCollector(Collector):
    """Offloaded pods by remote phase, counted at scrape time from the status cache.

    Every phase of ``POD_PHASES`` is exported (0 when none); a phase the API server
    invents later is counted as ``Unknown``.
    """

    def __init__(self, phases: Callable[[], Mapping[str, int]]) -> None:
        self._phases = phases

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict.fromkeys(POD_PHASES, 0)
        for phase, count in self._phases().items():
            key = phase if phase in counts else "Unknown"
            counts[key] += count
        family = GaugeMetricFamily(
            f"{NAMESPACE}_remote_pods", "Offloaded pods by remote phase", labels=["phase"]
        )
        for phase, count in counts.items():
            family.add_metric([phase], count)
        yield family


def register_phase_collector(
    registry: CollectorRegistry, phases: Callable[[], Mapping[str, int]]
) -> None:
    registry.register(_PhaseCollector(phases))
