"""The tunnel manager's configuration: plain values, built by whoever embeds it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import asyncssh


class PortPolicy(enum.StrEnum):
    """Which gateway port a forward gets (the sidecar's ``tcp_tunnel.port_policy``)."""

    CONTAINER = "container"
    """Gateway port = container port (upstream); a second pod asking for it gets an error."""
    RANGE = "range"
    """The lowest free port of a configured range (``tcp_tunnel.port_range``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelConfig:
    host: str
    port: int
    user: str
    client_key: asyncssh.SSHKey = field(repr=False)
    """The private key, in memory: never on a command line, never logged."""
    known_hosts: str | None
    """known_hosts file; None only with ``insecure`` (host key not checked)."""
    insecure: bool = False
    bind_address: str = "127.0.0.1"
    """Address the gateway listens on for each forward (sshd's GatewayPorts decides
    whether anything but loopback is honoured)."""
    port_policy: PortPolicy = PortPolicy.CONTAINER
    port_range: tuple[int, int] = (30000, 30999)
    keepalive_interval: float = 15.0
    """asyncssh disables keepalives by default; a dead gateway behind NAT would go unseen."""
    keepalive_count: int = 3
    connect_timeout: float = 10.0
    login_timeout: float = 10.0
    max_backoff: float = 30.0
    ciphers: tuple[str, ...] = ()
    """SSH ciphers in order of preference; empty: asyncssh's default order."""
