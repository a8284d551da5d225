"""The metric catalogue: every metric the process exports, on a registry passed in.

Names follow ``<namespace>_<subsystem>_<name>_<unit>`` with base units (seconds, bytes);
counters get ``_total`` at exposition. Labels come from closed sets (route, method,
status code, task name): never a pod uid or an error text. Library code never touches
prometheus-client's global registry, so tests build a fresh one each.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

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
        pending_deletes=Gauge(
            "pending_deletes",
            "Deletes accepted and not finished yet",
            namespace=NAMESPACE,
            subsystem="janitor",
            registry=registry,
        ),
    )
