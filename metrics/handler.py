"""The ``/metrics`` aiohttp handler for a given registry (text exposition format)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler that renders ``registry`` on every scrape."""

    async def handle(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        response = web.Response(body=body)
        # CONTENT_TYPE_LATEST carries a charset parameter, which aiohttp wants separately.
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return handle
