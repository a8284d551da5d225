"""The fixed choice sets of the settings, one ``StrEnum`` each.

A member equals its value (``DialMode.DIRECT == "direct"``), so a value read back from
the config keeps comparing as the string it was written as; code compares members.
``PortPolicy`` is the tunnel package's (the sidecar passes it on unchanged).
"""

from __future__ import annotations

import enum

# The tunnel's own enum: settings parse straight into what tunnel.TunnelConfig takes.
from tunnel.config import PortPolicy

__all__ = ["Capacity", "DialMode", "LogLevel", "OrphanPolicy", "PortPolicy", "TunnelPods"]


class LogLevel(enum.StrEnum):
    """``log.level``: a root log level name."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class Capacity(enum.StrEnum):
    """``offloading.capacity``: what the ping reports as the virtual node's resources."""

    ALLOCATABLE = "allocatable"
    """The matching nodes' allocatable, summed."""
    FREE = "free"
    """Allocatable minus the requests of the pods on those nodes."""


class OrphanPolicy(enum.StrEnum):
    """``offloading.orphan_policy``: what happens to an orphaned remote pod."""

    REPORT = "report"
    """``/orphans``, a metric and a log line; nothing is deleted."""
    DELETE = "delete"
    """Reported, then deleted with its objects one sweep later."""


class DialMode(enum.StrEnum):
    """``tcp_tunnel.dial_mode``: how the tunnel reaches a remote pod's port."""

    AUTO = "auto"
    """Direct, and port-forward when the pod IP does not answer."""
    DIRECT = "direct"
    """The pod IP."""
    PORTFORWARD = "portforward"
    """Through the remote API server's port-forward."""


class TunnelPods(enum.StrEnum):
    """``tcp_tunnel.pods``: which pods get tunnels."""

    ALL = "all"
    """Every pod with TCP container ports (upstream)."""
    ANNOTATED = "annotated"
    """Only pods annotated ``interlink.io/tcp-tunnel: "true"``."""
