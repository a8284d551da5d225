"""A leaner send path for the gateway connection's channel data (asyncssh internals).

Why this module exists: pod -> client throughput through the tunnel is bound by the CPU
asyncssh spends per SSH packet, and the gateway sshd takes at most 32 KiB of data per
packet on a forwarded channel, so every MB costs 32 packets. Measured (py-spy and perf
on tests/bench/tunnel_bench.py, asyncssh 2.24), asyncssh's send path costs per data
packet: an SSH_MSG_IGNORE packet sent in front of it (encrypted, and written to the
socket, on its own), one socket write for the packet itself, a new AESGCM object, and
about ten copies of the 32 KiB. The sidecar's tunnel end spent 2.2 ms of CPU per MB
downloaded where OpenSSH's ``ssh -R`` with the same cipher spends 1.1.

``install(conn)`` changes, on one logged-in connection, how channel data is sent when
nothing unusual is going on (the channel is open with nothing queued, the data is
``bytes``, the cipher is AES-GCM, no key exchange is due or running, no compression,
the ``asyncssh`` logger is not at DEBUG):

* channel ``write``: the data is cut into packets as memoryview slices, within the
  peer's window and packet size (what the window does not cover goes to asyncssh's own
  ``write``, which queues it until the peer's window adjust);
* ``send_packet`` of SSH_MSG_CHANNEL_DATA: framed with one join, encrypted by one AESGCM
  object per key, no IGNORE packet in front;
* ``_send``: the data packets of one event-loop iteration (the eight of a 256 KiB copy
  step) reach the socket in one write, flushed by a ``call_soon``.

Everything else takes asyncssh's own code and is written at once, after the data
gathered so far, so packets keep their order (hence their SSH sequence numbers and GCM
nonces) and control packets their timing: key exchange and rekeying (a data packet sent
while a rekey is due or running goes to asyncssh, which starts the rekey or defers the
packet), authentication, other packet types, other ciphers, compression, logging.

This patches asyncssh internals, the last resort: no public asyncssh API reaches the
packet layer, and ``asyncssh.connect`` takes no connection class. It patches objects
(one connection, its TCP channels), never a class. The attributes it relies on
(``_CONNECTION``, ``_CHANNEL``, ``tunnel.gcmkeys.GCM_CIPHER``) and the framing of ``send_packet``,
``write`` and ``_flush_send_buf`` it reproduces were checked the same in asyncssh
2.17.0 and 2.24.1; pyproject.toml pins ``asyncssh>=2.17,<2.25``. Should one be
missing, a warning is logged and the stock path stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from typing import Any

import asyncssh
from asyncssh.constants import MSG_CHANNEL_DATA

from tunnel.gcmkeys import GcmKeys, stock_warning

_warn_stock = stock_warning("send path")
_asyncssh_logger = logging.getLogger("asyncssh")

_CONNECTION = (
    "_send",
    "_transport",
    "_send_encryption",
    "_send_seq",
    "_send_enchdrlen",
    "_send_blocksize",
    "_kex_complete",
    "_auth_complete",
    "_compressor",
    "_rekey_bytes",
    "_rekey_bytes_sent",
    "_rekey_seconds",
    "_rekey_time",
)
"""asyncssh internals used on the connection."""
_CHANNEL = ("_send_state", "_send_buf", "_send_window", "_send_pktsize", "_send_chan")
"""... on each of its TCP channels."""

_UINT32 = struct.Struct("!I")
"""RFC 4254 5.2: SSH_MSG_CHANNEL_DATA is byte 94, uint32 recipient channel, string data
(a string is a uint32 length, then the bytes: RFC 4251 5)."""
_PREFIX = struct.Struct("!BB")
"""RFC 4253 6: a packet is uint32 packet_length, byte padding_length, the payload (its
first byte is the message type), then the padding. Under AES-GCM (RFC 5647 7.3) the
length is sent in clear and authenticated as the associated data, and the 16-byte tag
follows the ciphertext: on the wire, the length, then what ``AESGCM.encrypt`` returns."""
_MIN_PADDING = 4
"""RFC 4253 6: at least 4 bytes of random padding."""


class BulkSender:
    """The send path ``install`` put on one connection."""

    def __init__(self, conn: Any, transport: asyncio.Transport) -> None:
        self._conn = conn
        self._stock_send_packet = conn.send_packet
        # Kept here: asyncssh sets conn._transport to None when it closes, and aborts
        # the transport in a call_soon queued after our flush (so the disconnect
        # message still goes out, as it does without us).
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []
        self._keys = GcmKeys(_warn_stock)
        self.lean_packets = 0
        """Data packets this path framed and encrypted itself."""

    @property
    def keys(self) -> int:
        """Keys it encrypted with (1 + the rekeys it went through)."""
        return self._keys.keys

    # --- the channel side ---------------------------------------------------------------

    def adopt(self, chan: Any) -> None:
        """Put the lean ``write`` on one of the connection's channels."""
        if any(not hasattr(chan, name) for name in _CHANNEL):
            return  # stock write: the connection-side savings still apply
        stock_write = chan.write

        def write(data: Any, datatype: Any = None) -> None:
            if (
                datatype is not None
                or type(data) is not bytes  # asyncssh copies anything else: so must we
                or chan._send_state != "open"
                or chan._send_buf  # queued data goes first: asyncssh's queue keeps order
                or not chan._send_window
                or _asyncssh_logger.isEnabledFor(logging.DEBUG)
            ):
                stock_write(data, datatype)
                return
            view = memoryview(data)
            recipient = _UINT32.pack(chan._send_chan)
            while view and chan._send_window:
                size = min(len(view), chan._send_window, chan._send_pktsize)
                chan._send_window -= size
                self.send_packet(
                    MSG_CHANNEL_DATA, recipient, _UINT32.pack(size), view[:size], handler=chan
                )
                view = view[size:]
            if view:  # beyond the peer's window: asyncssh queues it until a window adjust
                stock_write(view.tobytes())

        chan.write = write

    # --- the packet side ----------------------------------------------------------------

    def send_packet(self, pkttype: int, *args: Any, handler: Any = None) -> None:
        """Replaces the connection's ``send_packet``."""
        conn = self._conn
        gcm = self._keys.current(conn._send_encryption) if pkttype == MSG_CHANNEL_DATA else None
        if (
            gcm is None
            or not (conn._kex_complete and conn._auth_complete)
            or conn._compressor is not None
            or conn._rekey_bytes_sent >= conn._rekey_bytes
            or (conn._rekey_seconds and time.monotonic() >= conn._rekey_time)
            or _asyncssh_logger.isEnabledFor(logging.DEBUG)
        ):
            self._stock_send_packet(pkttype, *args, handler=handler)
            return
        # No SSH_MSG_IGNORE in front. asyncssh sends one before every packet: RFC 4251
        # 9.3.1's countermeasure against CBC's predictable IVs; GCM's nonce is a counter
        # and every packet is authenticated, so there is nothing for it to hide.
        cipher, aead = gcm
        payload_length = 1 + sum(len(arg) for arg in args)
        blocksize = conn._send_blocksize
        padding = -(conn._send_enchdrlen + payload_length) % blocksize
        if padding < _MIN_PADDING:
            padding += blocksize
        packet_length = 1 + payload_length + padding
        length = _UINT32.pack(packet_length)
        plain = b"".join((_PREFIX.pack(padding, pkttype), *args, os.urandom(padding)))
        self._gather(length)
        self._gather(aead.encrypt(cipher._iv, plain, length))
        cipher._update_iv()  # RFC 5647 7.1: the nonce's invocation counter, per packet
        conn._send_seq = (conn._send_seq + 1) & 0xFFFFFFFF
        conn._rekey_bytes_sent += packet_length
        self.lean_packets += 1

    # --- the socket side ----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Replaces the connection's ``_send``, which asyncssh's own ``send_packet``
        calls: written at once, after the data gathered so far."""
        self._pending.append(data)
        self._flush()

    def _gather(self, data: bytes) -> None:
        """Channel data: written with everything else sent in this loop iteration."""
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if self._transport.is_closing():
            return
        with contextlib.suppress(ConnectionError):  # as asyncssh's _send: the transport
            self._transport.write(b"".join(pending))  # reports the loss itself


def install(conn: asyncssh.SSHClientConnection) -> BulkSender | None:
    """Put the lean send path on ``conn`` and on every TCP channel it creates from now
    on; ``conn`` must be logged in (no key exchange or authentication in flight). None
    if this asyncssh lacks what the path relies on: ``conn`` keeps asyncssh's own."""
    missing = [name for name in _CONNECTION if not hasattr(conn, name)]
    transport = getattr(conn, "_transport", None)
    if missing or not isinstance(transport, asyncio.Transport):
        _warn_stock(", ".join(missing) or "a socket transport")
        return None
    sender = BulkSender(conn, transport)
    conn._send = sender.send  # type: ignore[method-assign]
    conn.send_packet = sender.send_packet  # type: ignore[method-assign]
    # The public factory of the channels of forwarded (and direct) TCP connections.
    create_tcp_channel = conn.create_tcp_channel

    def create_and_adopt(*args: Any, **kwargs: Any) -> Any:
        chan = create_tcp_channel(*args, **kwargs)
        sender.adopt(chan)
        return chan

    conn.create_tcp_channel = create_and_adopt  # type: ignore[method-assign]
    return sender
