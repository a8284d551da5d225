"""Unix socket rules: stale sockets replaced, live ones and other files refused, mode set."""

from __future__ import annotations

import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from sidecar.listeners import ListenError, start_sites
from sidecar.settings import ListenAddress, ListenKind


async def ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.fixture
async def runner() -> AsyncIterator[web.AppRunner]:
    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    yield runner
    await runner.cleanup()


def unix(path: Path) -> tuple[ListenAddress, ...]:
    return (ListenAddress(kind=ListenKind.UNIX, path=str(path)),)


async def test_socket_gets_the_configured_mode(runner: web.AppRunner, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "plugin.sock"
    await start_sites(runner, unix(path), socket_mode=0o660)
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


async def test_stale_socket_is_replaced(runner: web.AppRunner, tmp_path: Path) -> None:
    path = tmp_path / "plugin.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    await start_sites(runner, unix(path), socket_mode=0o660)
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))


async def test_regular_file_is_refused_and_kept(runner: web.AppRunner, tmp_path: Path) -> None:
    path = tmp_path / "plugin.sock"
    path.write_text("precious")
    with pytest.raises(ListenError, match="is not a socket"):
        await start_sites(runner, unix(path), socket_mode=0o660)
    assert path.read_text() == "precious"


async def test_live_socket_is_refused(runner: web.AppRunner, tmp_path: Path) -> None:
    path = tmp_path / "plugin.sock"
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen()
    try:
        with pytest.raises(ListenError, match="another process is serving"):
            await start_sites(runner, unix(path), socket_mode=0o660)
    finally:
        live.close()
