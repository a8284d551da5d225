"""What the tunnel manager reports through, as a protocol of its own: ``tunnel`` knows no
metric catalogue (the sidecar passes its ``metrics.Metrics``, which has these members;
a test or another host can pass anything shaped so)."""

from __future__ import annotations

from typing import Protocol, TypeVar

_Child = TypeVar("_Child", covariant=True)


class CounterLike(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class GaugeLike(CounterLike, Protocol):
    def set(self, value: float) -> None: ...

    def dec(self, amount: float = 1) -> None: ...


class Labelled(Protocol[_Child]):
    """A metric family: one child per label values (prometheus-client's ``labels``)."""

    def labels(self, *values: str) -> _Child: ...


class TunnelMetrics(Protocol):
    """The series the tunnel manager updates (names in metrics/catalogue.py)."""

    @property
    def tunnels(self) -> Labelled[GaugeLike]:
        """Tunnels per state."""

    @property
    def ssh_reconnects(self) -> CounterLike:
        """Reconnections to the gateway."""

    @property
    def gateway_connected(self) -> GaugeLike:
        """1 while the SSH connection to the gateway is up."""

    @property
    def tunnel_connections(self) -> GaugeLike:
        """Connections being forwarded now."""

    @property
    def tunnel_connection_errors(self) -> Labelled[CounterLike]:
        """Forwarded connections that failed, by reason."""

    @property
    def tunnel_bytes(self) -> Labelled[CounterLike]:
        """Bytes forwarded, by direction."""
