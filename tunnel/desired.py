"""The desired-state value the sidecar hands the tunnel manager."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class DesiredTunnel:
    """One pod port that should be reachable through the gateway."""

    pod_uid: str
    """Local pod uid: the stable identity of the tunnel's owner."""
    namespace: str
    """Remote namespace of the pod."""
    pod_name: str
    """Remote pod name (for ``pods/portforward``)."""
    pod_ip: str
    """Remote pod IP (for direct dialling); empty until the pod has one."""
    port: int
    """Container port to reach."""
