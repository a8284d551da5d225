"""How much the plugin API takes on at once, and how long a client may take to send.

interLink cannot authenticate to its plugin, so whoever reaches the port can open
connections: these limits keep one client from holding the process.

* ``concurrency_limit``: at most ``limit`` requests in the handlers at once; beyond,
  503 with ``Retry-After`` at once (an answer, not a queue that grows without bound).
  interLink's virtual kubelet sends a few at a time (its status loop is sequential;
  creates and deletes come from a handful of workers), so the default leaves it far
  from the cap.
* ``read_body``: the request body within ``timeout`` seconds, else 408. The headers
  are bounded by the server's keep-alive timer instead (aiohttp closes a connection
  that has not completed a request within ``keepalive_timeout`` of opening or of its
  previous response; see ``sidecar.app``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import Gauge

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TooSlow(web.HTTPRequestTimeout):
    """The body did not arrive in time (408)."""


def concurrency_limit(limit: int, gauge: Gauge) -> Middleware:
    """At most ``limit`` requests in the handlers; ``gauge`` shows how many are."""
    in_flight = 0

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if in_flight >= limit:
            return web.Response(
                status=503,
                text=f"busy: {limit} requests in progress (app.max_concurrent_requests); "
                "retry shortly\n",
                headers={"Retry-After": "1"},
            )
        in_flight += 1
        gauge.inc()
        try:
            return await handler(request)
        finally:
            in_flight -= 1
            gauge.dec()

    return middleware


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The whole body, or 408 when it takes longer than ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise TooSlow(
            text=f"request body not received within {timeout:.0f} s "
            "(app.request_body_timeout_seconds)\n"
        ) from None
