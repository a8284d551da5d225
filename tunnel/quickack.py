"""Acknowledge what the gateway sends at once, so that its Nagle never waits on us.

Why: sshd leaves Nagle on (no TCP_NODELAY) on a connection without an interactive
session, such as ours, which only carries forwards. A small packet it sends while its
previous small one is unacknowledged waits for that acknowledgement, and Linux delays
an acknowledgement it cannot piggyback by up to 40 ms. Between two connections of a
forward sshd's last packet is typically its SSH_MSG_CHANNEL_CLOSE, which we do not
answer: the next connection's SSH_MSG_CHANNEL_OPEN then waited up to 40 ms. Measured
(tests/bench/tunnel_bench.py, 1,500 sequential connections): 1 % of connection set-ups
took 40-50 ms, none with this. ``ssh -R`` shows the same stall, from its own Nagle.

TCP_QUICKACK is Linux-only and not sticky (the kernel drops back to delayed
acknowledgements by itself), so it is set again after every read of the connection:
one setsockopt per read, next to a read of up to 256 KiB.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import asyncssh

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def install(conn: asyncssh.SSHClientConnection) -> bool:
    """Acknowledge every read of ``conn``'s socket at once; False where TCP_QUICKACK does
    not exist (not Linux) or ``conn`` has no socket of its own."""
    sock = conn.get_extra_info("socket")
    if _QUICKACK is None or sock is None:
        return False
    received = conn.data_received

    def data_received(data: bytes, datatype: Any = None) -> None:
        received(data, datatype)
        with contextlib.suppress(OSError):  # the socket closed under us: nothing to ack
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    conn.data_received = data_received  # type: ignore[method-assign]
    return True
