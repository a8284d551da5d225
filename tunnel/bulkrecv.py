"""A leaner receive path for the gateway connection's channel data (asyncssh internals).

Why this module exists: client -> pod throughput is bound by the CPU asyncssh spends
per received SSH packet (sshd sends at most 32 KiB of data per packet). Measured on
tests/bench/tunnel_bench.py (asyncssh 2.24): copies dominate (perf: memmove 17 % of
the process, AES-GCM 5 %): asyncssh appends every socket read to an immutable bytes
buffer and re-slices the rest of that buffer twice per packet, decrypts through two
more concatenations with a new AESGCM object per packet, then formats a log line
nobody reads. The sidecar spent 0.9 ms of CPU per MB uploaded, ``ssh -R`` 0.45.

``install(conn)`` wraps the connection's ``data_received`` (the asyncio protocol
method). Under AES-GCM the packet length travels in clear, so the read is cut into
packets here; an incomplete last one waits here for the next read, so asyncssh's parser
always stands at a packet boundary. Each SSH_MSG_CHANNEL_DATA packet asyncssh would
accept (open channel, within its window) is decrypted from a memoryview of the read
with one AESGCM object per key and handed to its channel's own ``process_packet``, as
asyncssh's ``_recv_packet`` would. Every other packet (another type, an unknown
channel, a bad tag...) goes, alone and still encrypted, to asyncssh's own
``data_received``, which handles it as always, errors and key exchanges included: the
sequence number and GCM nonce it finds are exactly those it would have had. Another
cipher, compression, the ``asyncssh`` logger at DEBUG, or asyncssh's parser busy
(a handler running as a task, or data it buffered before): all of the read goes to
asyncssh.

Like tunnel/bulksend.py, this patches asyncssh internals, the last resort (no public
API reaches the packet layer), on one connection object. The attributes it relies on
(``_CONNECTION``, ``_CHANNEL``, ``tunnel.gcmkeys.GCM_CIPHER``) and the receive logic it reproduces
(``_recv_pkthdr``, ``_recv_packet``, ``_finish_recv_packet``) were checked the same in
asyncssh 2.17.0 and 2.24.1; pyproject.toml pins ``asyncssh>=2.17,<2.25``. Should one
be missing, a warning is logged and the stock path stays.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import asyncssh
from asyncssh.constants import MSG_CHANNEL_DATA
from asyncssh.packet import SSHPacket
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tunnel.gcmkeys import GcmKeys, stock_warning

_warn_stock = stock_warning("receive path")
_asyncssh_logger = logging.getLogger("asyncssh")

_CONNECTION = (
    "_inpbuf",
    "_recv_handler",
    "_recv_pkthdr",
    "_recv_packet",
    "_pktlen",
    "_recv_blocksize",
    "_recv_macsize",
    "_recv_encryption",
    "_recv_seq",
    "_channels",
    "_max_recv_pktlen",
    "_decompressor",
    "_reset_keepalive_timer",
)
"""asyncssh internals used on the connection."""
_CHANNEL = ("_recv_state", "_recv_window", "process_packet")
"""... on a channel that receives data."""

_LENGTH = struct.Struct("!I")
"""RFC 4253 6: uint32 packet_length, then byte padding_length, payload, padding. Under
AES-GCM (RFC 5647 7.3) the length is in clear (the associated data) and a 16-byte tag
follows the ciphertext of the rest."""
_TAG = 16
_MIN_PADDING = 4
"""RFC 4253 6: at least 4 bytes of padding."""
_HEAD = struct.Struct("!BBII")
"""padding_length, then RFC 4254 5.2's SSH_MSG_CHANNEL_DATA: byte 94, uint32 recipient
channel, string data (uint32 length, then the bytes)."""


class BulkReceiver:
    """The receive path ``install`` put on one connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._stock_data_received = conn.data_received
        self._keys = GcmKeys(_warn_stock)
        self._tail = b""
        """The start of a packet whose end has not been read yet."""
        self.lean_packets = 0
        """Data packets this path decrypted and delivered itself."""

    def data_received(self, data: bytes, datatype: Any = None) -> None:
        """Replaces the connection's ``data_received``."""
        conn = self._conn
        if self._tail:
            data, self._tail = self._tail + data, b""
        view = memoryview(data)
        done, end = 0, len(data)
        while done < end:
            gcm = self._keys.current(conn._recv_encryption)
            if (
                gcm is None
                or conn._decompressor is not None
                or _asyncssh_logger.isEnabledFor(logging.DEBUG)
            ):
                self._stock_data_received(data[done:] if done else data, datatype)
                return
            if conn._inpbuf or conn._recv_handler != conn._recv_pkthdr:
                # asyncssh's parser holds the start of a packet (read while it was busy
                # with a key exchange): it gets exactly the rest of that packet.
                need = self._stock_needs(data, done)
                if need is None or end - done <= need:
                    self._stock_data_received(data[done:] if done else data, datatype)
                    return
                self._stock_data_received(data[done : done + need], datatype)
                done += need
                continue
            if end - done < _LENGTH.size:
                break
            (length,) = _LENGTH.unpack_from(data, done)
            total = _LENGTH.size + length + _TAG
            if length > conn._max_recv_pktlen:
                self._stock_data_received(data[done:], datatype)  # it disconnects
                return
            if end - done < total:
                break
            if not self._deliver(view[done : done + total], *gcm):
                # Anything but channel data, or data asyncssh must refuse: exactly this
                # packet to asyncssh, which decrypts it with the same nonce and decides.
                self._stock_data_received(data[done : done + total], datatype)
            done += total
        # An incomplete packet waits here for the rest, never in asyncssh's buffer: its
        # parser stays at a packet boundary.
        self._tail = data[done:]
        conn._reset_keepalive_timer()  # as asyncssh does on every read

    def _stock_needs(self, data: bytes, done: int) -> int | None:
        """How many bytes of ``data[done:]`` asyncssh's parser needs to finish the packet
        it holds the start of (its ``_recv_pkthdr`` and ``_recv_packet``); None when it
        cannot be told (the parser is busy, or the length is not complete yet)."""
        conn = self._conn
        buffered = len(conn._inpbuf)
        if conn._recv_handler == conn._recv_packet:  # header decoded: the rest is known
            rest = _LENGTH.size + conn._pktlen + conn._recv_macsize - conn._recv_blocksize
            return int(max(rest - buffered, 0)) or None
        if conn._recv_handler != conn._recv_pkthdr or buffered + len(data) - done < 4:
            return None
        start = bytes(conn._inpbuf[: _LENGTH.size]) + data[done : done + _LENGTH.size]
        (length,) = _LENGTH.unpack_from(start)
        return int(_LENGTH.size + length + _TAG - buffered)

    def _deliver(self, packet: memoryview, cipher: Any, aead: AESGCM) -> bool:
        """Decrypt one whole packet and, if it is channel data asyncssh would accept,
        hand it to its channel; False (nothing changed) otherwise."""
        conn = self._conn
        header = packet[: _LENGTH.size]
        try:
            plain = aead.decrypt(cipher._iv, packet[_LENGTH.size :], header)
        except InvalidTag:
            return False  # asyncssh fails it too, and disconnects
        if len(plain) < _HEAD.size:
            return False
        padding, pkttype, recipient, size = _HEAD.unpack_from(plain)
        chan = conn._channels.get(recipient)
        if (
            pkttype != MSG_CHANNEL_DATA
            or padding < _MIN_PADDING
            or padding + _HEAD.size + size != len(plain)
            or chan is None
            or not all(hasattr(chan, name) for name in _CHANNEL)
            or chan._recv_state != "open"
            or size > chan._recv_window
        ):
            return False
        cipher._update_iv()  # RFC 5647 7.1: the nonce's invocation counter
        seq = conn._recv_seq
        conn._recv_seq = (seq + 1) & 0xFFFFFFFF
        # The channel's own handler (window accounting, delivery), fed what asyncssh's
        # _recv_packet feeds it: the payload from after the recipient channel on.
        chan.process_packet(pkttype, seq, SSHPacket(plain[_HEAD.size - 4 : -padding]))
        self.lean_packets += 1
        return True


def install(conn: asyncssh.SSHClientConnection) -> BulkReceiver | None:
    """Put the lean receive path on ``conn``, which must be logged in; None if this
    asyncssh lacks what the path relies on: ``conn`` keeps asyncssh's own."""
    missing = [name for name in _CONNECTION if not hasattr(conn, name)]
    if missing:
        _warn_stock(", ".join(missing))
        return None
    receiver = BulkReceiver(conn)
    conn.data_received = receiver.data_received  # type: ignore[method-assign]
    return receiver
