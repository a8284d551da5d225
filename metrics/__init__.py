"""Prometheus metrics: the catalogue and the /metrics handler. Never imports ``sidecar``."""

from metrics.catalogue import (
    ERROR_CODE,
    OTHER,
    REMOTE_RESOURCES,
    REMOTE_VERBS,
    Metrics,
    make_metrics,
    register_phase_collector,
)
from metrics.handler import metrics_handler

__all__ = [
    "ERROR_CODE",
    "OTHER",
    "REMOTE_RESOURCES",
    "REMOTE_VERBS",
    "Metrics",
    "make_metrics",
    "metrics_handler",
    "register_phase_collector",
]
