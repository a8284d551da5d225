"""A reader/writer pair over a ``pods/portforward`` websocket (``v4.channel.k8s.io``).

Protocol facts: every binary frame starts with a channel byte; for the single requested
port, channel 0 carries data and channel 1 errors; the first frame on each channel is
the port number (2 bytes, little-endian) and carries no data. The protocol has no
half-close: EOF from our side cannot be signalled, so ``write_eof`` does nothing.

EOF toward our client comes ~1 s after the pod closes its side, on a real kubelet with
containerd: containerd's CRI ``portForward`` copies both ways and, once one direction
ends, waits up to 1 s for the other before it ends the stream (the websocket CLOSE
arrives then; we turn it into EOF at once). ``kubectl port-forward`` shows the same
second. Closing the websocket on our client's EOF would make it faster and lose late
answers (containerd never passes a half-close to the pod): a reply sent 2 s after a
half-closed request still arrives here, and does not through kubectl. Where a prompt EOF
matters, dial the pod IP (``tcp_tunnel.dial_mode = direct``).
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

DATA, ERROR = 0, 1
_CLOSING: set[asyncio.Task[bool]] = set()


class WebSocketStream:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._buffer = bytearray()
        self._eof = False
        self._seen_port = {DATA: False, ERROR: False}
        self._pending: list[bytes] = []

    async def read(self, n: int = -1) -> bytes:
        while not self._buffer and not self._eof:
            message = await self._ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                self._eof = True  # CLOSE, CLOSED or ERROR: the stream is over
                break
            frame: bytes = message.data
            if not frame:
                continue
            channel, payload = frame[0], frame[1:]
            if channel in self._seen_port and not self._seen_port[channel]:
                self._seen_port[channel] = True  # the port announcement
                continue
            if channel == DATA:
                self._buffer.extend(payload)
            elif channel == ERROR and payload:
                raise ConnectionError(f"port-forward error: {payload.decode(errors='replace')}")
        size = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def write(self, data: bytes) -> None:
        self._pending.append(bytes(data))

    async def drain(self) -> None:
        while self._pending:
            await self._ws.send_bytes(bytes([DATA]) + self._pending.pop(0))

    def write_eof(self) -> None:
        """No half-close in the port-forward protocol."""

    def close(self) -> None:
        # close() is synchronous in the writer protocol; the websocket close handshake
        # is async: keep a reference to its task until it is done.
        with contextlib.suppress(RuntimeError):
            task = asyncio.get_running_loop().create_task(self._ws.close())
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)
