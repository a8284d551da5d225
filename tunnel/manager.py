"""The tunnel manager: one SSH connection to the gateway, one remote forward per pod port.

Contract: ``run()`` runs until cancelled and never returns; connection failures are
retried with capped, jittered backoff (tenacity's full jitter: a random wait below
0.5 s doubling up to ``max_backoff``), never raised. After a reconnect every wanted
forward is opened again. Every connection a forward carries is a task the manager owns:
when the gateway connection is lost or the forward closes (pod gone), its connections
are cancelled and their sockets closed, so nothing outlives the forward.
``set_desired`` (called by the embedder whenever its view of the pods changes) is the
only input; ``snapshot`` the output. Each forward is an asyncssh remote listener on the
gateway; every connection arriving on it is dialled to the pod (``dial``) and pumped
both ways.

asyncssh facts relied on: keepalives are off unless set (we set them); it never
reconnects by itself; ``start_server`` raises ChannelListenError when sshd refuses the
port (taken, or not permitted); a handler coroutine runs as a task asyncssh only reaps,
it never cancels it when the connection drops (hence our own bookkeeping).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import asyncssh
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from tunnel import bulkrecv, bulksend, quickack
from tunnel.config import PortPolicy, TunnelConfig
from tunnel.desired import DesiredTunnel
from tunnel.dialers import Dial
from tunnel.pump import pump
from tunnel.state import TunnelState, TunnelStatus
from tunnel.telemetry import TunnelMetrics

logger = logging.getLogger(__name__)


def _key(tunnel: DesiredTunnel) -> str:
    return f"{tunnel.pod_uid}/{tunnel.port}"


class TunnelManager:
    def __init__(self, config: TunnelConfig, dial: Dial, *, metrics: TunnelMetrics) -> None:
        self._config = config
        self._dial = dial
        self._metrics = metrics
        self._desired: dict[str, DesiredTunnel] = {}
        self._listeners: dict[str, asyncssh.SSHListener] = {}
        self._status: dict[str, TunnelStatus] = {}
        self._wake = asyncio.Event()
        self._connections: dict[str, set[asyncio.Task[Any]]] = {}
        """Per forward key: the tasks carrying its connections."""
        self.connected = False

    # --- inputs and outputs -------------------------------------------------------------

    def set_desired(self, tunnels: Iterable[DesiredTunnel]) -> None:
        desired = {_key(t): t for t in tunnels}
        if desired != self._desired:
            self._desired = desired
            self._wake.set()

    def snapshot(self) -> list[TunnelStatus]:
        return sorted(self._status.values(), key=lambda s: (s.namespace, s.pod_name, s.pod_port))

    def _set(self, tunnel: DesiredTunnel, state: TunnelState, port: int, reason: str = "") -> None:
        old = self._status.get(_key(tunnel))
        status = TunnelStatus(
            _key(tunnel),
            tunnel.pod_uid,
            tunnel.namespace,
            tunnel.pod_name,
            tunnel.port,
            port,
            state,
            reason,
        )
        self._status[_key(tunnel)] = status
        if old is None or (old.state, old.gateway_port, old.reason) != (state, port, reason):
            log = logger.warning if state is TunnelState.ERROR else logger.info
            log(
                "tunnel %s/%s:%d -> gateway port %d: %s%s",
                tunnel.namespace,
                tunnel.pod_name,
                tunnel.port,
                port,
                state.value,
                f" ({reason})" if reason else "",
            )
        self._count_states()

    def _count_states(self) -> None:
        for state in TunnelState:
            self._metrics.tunnels.labels(state.value).set(
                sum(1 for s in self._status.values() if s.state is state)
            )

    # --- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            conn = await self._connect_with_retries()
            try:
                await self._serve(conn)
            finally:
                await self._drop_connections(list(self._connections))
                self._mark_down()
                conn.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.wait_closed(), 5)
            self._metrics.ssh_reconnects.inc()

    async def _connect_with_retries(self) -> asyncssh.SSHClientConnection:
        """Connect, retrying forever; a fresh retry state per outage resets the backoff."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((OSError, asyncssh.Error)),
            wait=wait_random_exponential(multiplier=0.5, max=self._config.max_backoff),
            before_sleep=self._log_retry,
        ):
            with attempt:
                return await self._connect()
        raise AssertionError("unreachable: retries never stop")  # pragma: no cover

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is None:  # pragma: no cover - only failures are retried
            return
        self._metrics.tunnel_connection_errors.labels(_reason(exc)).inc()
        logger.warning(
            "gateway %s:%d: %s; retrying in %.1f s",
            self._config.host,
            self._config.port,
            _describe(exc),
            state.upcoming_sleep,
        )

    async def _drop_connections(self, keys: Iterable[str]) -> None:
        """Cancel the connection tasks of these forwards and wait until they are gone."""
        tasks = [task for key in keys for task in self._connections.pop(key, ())]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _connect(self) -> asyncssh.SSHClientConnection:
        config = self._config
        if config.insecure:
            logger.warning(
                "connecting to gateway %s:%d WITHOUT host key verification "
                "(tcp_tunnel.insecure_skip_host_key_check)",
                config.host,
                config.port,
            )
        known_hosts: Any = None if config.insecure else config.known_hosts
        if isinstance(known_hosts, str):
            # Read in a thread: given the path, asyncssh reads the file on the event loop
            # at every connect (each reconnect too).
            known_hosts = await asyncio.to_thread(asyncssh.read_known_hosts, known_hosts)
        conn = await asyncssh.connect(
            config.host,
            config.port,
            username=config.user,
            client_keys=[config.client_key],
            known_hosts=known_hosts,
            keepalive_interval=config.keepalive_interval,
            keepalive_count_max=config.keepalive_count,
            connect_timeout=config.connect_timeout,
            login_timeout=config.login_timeout,
            agent_path=None,
            encryption_algs=list(config.ciphers),
            config=None,
        )
        bulksend.install(conn)  # pod -> gateway data: see tunnel/bulksend.py
        bulkrecv.install(conn)  # gateway -> pod data: see tunnel/bulkrecv.py
        quickack.install(conn)  # no 40 ms stalls on sshd's Nagle: see tunnel/quickack.py
        self.connected = True
        self._metrics.gateway_connected.set(1)
        logger.info("connected to gateway %s:%d", config.host, config.port)
        return conn

    def _mark_down(self) -> None:
        self.connected = False
        self._metrics.gateway_connected.set(0)
        self._listeners.clear()
        for key, status in list(self._status.items()):
            if status.state is TunnelState.OPEN:
                self._status[key] = TunnelStatus(
                    key,
                    status.pod_uid,
                    status.namespace,
                    status.pod_name,
                    status.pod_port,
                    status.gateway_port,
                    TunnelState.PENDING,
                    "gateway connection lost",
                )
        self._count_states()

    async def _serve(self, conn: asyncssh.SSHClientConnection) -> None:
        closed = asyncio.create_task(conn.wait_closed(), name="gateway-closed")
        try:
            while not closed.done():
                self._wake.clear()
                await self._reconcile(conn)
                waker = asyncio.create_task(self._wake.wait(), name="tunnel-wake")
                await asyncio.wait([closed, waker], return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
        finally:
            closed.cancel()
        logger.warning("gateway connection lost; reconnecting")

    async def _reconcile(self, conn: asyncssh.SSHClientConnection) -> None:
        for key in [k for k in self._listeners if k not in self._desired]:
            listener = self._listeners.pop(key)
            listener.close()
            await listener.wait_closed()
            await self._drop_connections([key])
            logger.info("tunnel %s closed; gateway port %d released", key, listener.get_port())
        for key in [k for k in self._status if k not in self._desired]:
            del self._status[key]
        self._count_states()
        for key, tunnel in self._desired.items():
            if key in self._listeners:
                continue
            await self._open(conn, key, tunnel)

    async def _open(
        self, conn: asyncssh.SSHClientConnection, key: str, tunnel: DesiredTunnel
    ) -> None:
        """Open the forward for ``tunnel``; with a port range, a port the gateway refuses
        (taken by something else there) is skipped for the next one."""
        refused: set[int] = set()
        while True:
            port, reason = self._allocate(tunnel, refused)
            if port == 0:
                self._set(tunnel, TunnelState.ERROR, 0, reason)
                return
            try:
                listener = await conn.start_server(
                    self._handler_factory(key), self._config.bind_address, port
                )
            except (asyncssh.Error, asyncssh.ChannelListenError, OSError) as exc:
                # ChannelListenError (sshd refused the port) is not an asyncssh.Error.
                if self._config.port_policy is PortPolicy.RANGE:
                    refused.add(port)
                    continue
                self._set(tunnel, TunnelState.ERROR, port, f"gateway refused port {port}: {exc}")
                return
            self._listeners[key] = listener
            self._set(tunnel, TunnelState.OPEN, listener.get_port())
            return

    def _allocate(self, tunnel: DesiredTunnel, refused: set[int]) -> tuple[int, str]:
        """A gateway port for ``tunnel``, or (0, why not)."""
        held = {self._listeners[k].get_port(): k for k in self._listeners}
        if self._config.port_policy is PortPolicy.CONTAINER:
            owner = held.get(tunnel.port)
            if owner is not None:
                other = self._status[owner]
                return 0, (
                    f"gateway port {tunnel.port} is already used by "
                    f"{other.namespace}/{other.pod_name}"
                )
            return tunnel.port, ""
        low, high = self._config.port_range
        for port in range(low, high + 1):
            if port not in held and port not in refused:
                return port, ""
        return 0, f"no free gateway port in {low}-{high}"

    def _handler_factory(self, key: str) -> Any:
        def factory(_orig_host: str, _orig_port: int) -> Any:
            return lambda reader, writer: self._handle(key, reader, writer)

        return factory

    async def _handle(self, key: str, reader: Any, writer: Any) -> None:
        tunnel = self._desired.get(key)
        if tunnel is None:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None  # asyncssh runs each handler as a task
        self._connections.setdefault(key, set()).add(task)
        self._metrics.tunnel_connections.inc()
        try:
            try:
                remote = await self._dial(tunnel)
            except Exception as exc:  # noqa: BLE001 - any dial failure ends this connection only
                self._metrics.tunnel_connection_errors.labels("dial").inc()
                logger.warning(
                    "tunnel %s: cannot reach %s/%s:%d: %s",
                    key,
                    tunnel.namespace,
                    tunnel.pod_name,
                    tunnel.port,
                    _describe(exc),
                )
                return
            await pump(
                (reader, writer),
                remote,
                a_to_b=self._metrics.tunnel_bytes.labels("to_pod").inc,
                b_to_a=self._metrics.tunnel_bytes.labels("from_pod").inc,
            )
        finally:
            writer.close()  # idempotent; covers a dial failure or a cancel while dialling
            self._metrics.tunnel_connections.dec()
            self._connections.get(key, set()).discard(task)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return "host_key"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "auth"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "connect"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return (
            "host key not trusted: the gateway's key is not in "
            "tcp_tunnel.known_hosts_file (connection refused)"
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return "login refused: the gateway does not accept this user and key"
    return f"{type(exc).__name__}: {exc}"
