"""What the tunnel manager reports about each tunnel (``GET /tunnels``, logs, metrics)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TunnelState(enum.Enum):
    PENDING = "pending"
    """Wanted, waiting for the gateway connection."""
    OPEN = "open"
    """The gateway listens on ``gateway_port`` and forwards to the pod."""
    ERROR = "error"
    """Cannot be opened; ``reason`` says why (port taken, refused by the gateway, ...)."""


@dataclass(frozen=True, slots=True)
class TunnelStatus:
    key: str
    """``<pod uid>/<port>``: the tunnel's identity."""
    pod_uid: str
    namespace: str
    pod_name: str
    pod_port: int
    gateway_port: int
    state: TunnelState
    reason: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "pod_uid": self.pod_uid,
            "namespace": self.namespace,
            "pod": self.pod_name,
            "pod_port": self.pod_port,
            "gateway_port": self.gateway_port,
            "state": self.state.value,
            "reason": self.reason,
        }
