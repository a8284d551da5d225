"""Opening a container's log when there may be nothing to stream yet.

The remote API server answers ``204 No Content`` for a pod that has no node yet: not a
failure, an empty log, as for a container that has written nothing.

A real kubelet answers a log request for a container that has not started (the image is
being set up, an init container is still running, or failed and never will finish) with
``400 BadRequest``: ``container "c" in pod "p" is waiting to start: ContainerCreating``
(or ``PodInitializing``). To interLink that is not a bad request, and not an error: the
wire contract asks for ``200`` and an empty body when the container exists but has
written nothing yet (the virtual kubelet does not retry a failed log read). So:

* without ``Follow``: an empty log;
* with ``Follow``: the stream waits for the container to start, then follows it, and ends
  empty if the pod ends first (an init container failed: the container never runs) or
  is gone. The caller bounds the wait by the client's connection.

kwok starts containers at once, so this only shows on a real node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from sidecar.core.pods import LogOptions
from sidecar.core.shape import JsonObject
from sidecar.remote.errors import RemoteError

RETRY_SECONDS = 1.0
"""How often a follow asks again for a container that is waiting to start (a real pod
starts in 1-2 s; each try is one log request)."""
_WAITING = "is waiting to start"
_TERMINAL_PHASES = ("Succeeded", "Failed")


def no_content(exc: RemoteError) -> bool:
    """The remote API server's answer for a pod that has no node yet."""
    return exc.status == 204


def waiting_to_start(exc: RemoteError) -> bool:
    """The kubelet's answer for a container that has not started (yet)."""
    return exc.status == 400 and _WAITING in exc.message


async def open_when_started(
    open_log: Callable[[], Awaitable[aiohttp.ClientResponse]],
    current_pod: Callable[[], Awaitable[JsonObject | None]],
    options: LogOptions,
) -> aiohttp.ClientResponse | None:
    """The log stream, or None for an empty log (a pod without a node; a container that
    has not started; with ``options.follow``, one that never will). Other errors
    propagate."""
    pod_ended = False
    while True:
        try:
            return await open_log()
        except RemoteError as exc:
            if no_content(exc):
                return None
            if not waiting_to_start(exc):
                raise
            if not options.follow or pod_ended:
                return None
        # Asked again after the pod's end: a container that started and ended between
        # the answer above and this read still has its log.
        pod = await current_pod()
        pod_ended = pod is None or (pod.get("status") or {}).get("phase") in _TERMINAL_PHASES
        if not pod_ended:
            await asyncio.sleep(RETRY_SECONDS)
