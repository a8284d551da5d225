"""Binding the plugin API to a unix socket and/or TCP, as interLink's SidecarURL expects.

Unix socket rules: the parent directory is created; a leftover socket file from a
previous run is replaced, but one that a live process still serves is an error (two
plugins on one socket would split interLink's calls); any other kind of file at that
path is an error, never deleted; the socket gets ``app.socket_mode`` (0660 by default:
the plugin API has no authentication, file permissions are its access control).
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from aiohttp import web

from sidecar.settings import ListenAddress, ListenKind


class ListenError(Exception):
    """The plugin API cannot listen where configured; the message says why."""


def _prepare_unix_path(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not stat.S_ISSOCK(mode):
        raise ListenError(f"app.socket_address: {path} exists and is not a socket; not touching it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # stale: nobody accepts on it any more
        return
    finally:
        probe.close()
    raise ListenError(f"app.socket_address: another process is serving on {path}")


async def start_sites(
    runner: web.AppRunner, addresses: tuple[ListenAddress, ...], *, socket_mode: int
) -> list[str]:
    """Start one site per address; returns their URLs (with the real TCP port)."""
    urls = []
    for address in addresses:
        site: web.BaseSite
        if address.kind is ListenKind.UNIX:
            path = Path(address.path)
            _prepare_unix_path(path)
            site = web.UnixSite(runner, str(path))
            await site.start()
            os.chmod(path, socket_mode)
            urls.append(address.url)
        else:
            site = web.TCPSite(runner, address.host, address.port)
            try:
                await site.start()
            except OSError as exc:
                raise ListenError(
                    f"app.socket_address: cannot listen on {address.url}: {exc}"
                ) from None
            urls.append(address.url)
    return urls


def bound_tcp_port(runner: web.AppRunner) -> int:
    """The port the runner's (only) TCP site got; for port 0 configurations."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise LookupError("no TCP site")
