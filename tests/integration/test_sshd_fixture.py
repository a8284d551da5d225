"""The real OpenSSH gateway works for what the tunnels need: a pinned host key, key login
and a remote (reverse) forward whose connections come back to the client."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest

from tests.fixtures.sshd import SshGateway

pytestmark = pytest.mark.sshd


async def test_remote_forward_through_real_sshd(sshd: SshGateway) -> None:
    served = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        served.set()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    echo_port = server.sockets[0].getsockname()[1]
    async with (
        server,
        asyncssh.connect(
            sshd.host,
            sshd.port,
            username=sshd.user,
            client_keys=[str(sshd.client_key)],
            known_hosts=str(sshd.known_hosts),
            keepalive_interval=5,
        ) as conn,
    ):
        listener = await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", echo_port)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.get_port())
        writer.write(b"ping through the gateway")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), 10) == b"ping through the gateway"
        writer.close()
        await writer.wait_closed()
        listener.close()
        await listener.wait_closed()
        # Python 3.11's Server.wait_closed does not wait for handlers: wait ourselves.
        await asyncio.wait_for(served.wait(), 10)


async def test_unknown_host_key_is_refused(sshd: SshGateway, tmp_path: object) -> None:
    wrong = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    known = asyncssh.import_known_hosts(f"[127.0.0.1]:{sshd.port} {wrong}")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await asyncssh.connect(
            sshd.host,
            sshd.port,
            username=sshd.user,
            client_keys=[str(sshd.client_key)],
            known_hosts=known,
        )
