"""The plugin API aiohttp application: routes, error mapping and per-request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from metrics import Metrics
from sidecar.api import routes
from sidecar.api.wire import WireError
from sidecar.offload.service import Offloader
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError
from sidecar.remote.health import RemoteHealth
from sidecar.settings import OffloadingSettings
from sidecar.status.cache import StatusCache

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _error_middleware(metrics: Metrics, *, log_requests: bool) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = _route_name(request)
        try:
            response = await handler(request)
        except WireError as exc:
            response = routes.error_response(exc.status, exc.message)
        except RemoteError as exc:
            # 0: no answer at all; anything else: the remote server said no.
            code = 503 if exc.status == 0 else 502
            response = routes.error_response(code, f"remote API server: {exc}")
            logger.warning("%s %s failed: %s", request.method, request.path, exc)
        except web.HTTPException as exc:
            response = routes.error_response(exc.status, exc.reason)
        except Exception:
            logger.exception("%s %s: unexpected error", request.method, request.path)
            response = routes.error_response(500, "internal error in the plugin (see its log)")
        elapsed = time.perf_counter() - started
        metrics.api_requests.labels(route, request.method, str(response.status)).inc()
        metrics.api_request_duration.labels(route).observe(elapsed)
        if log_requests:
            # Never the body: it carries Secret data and service-account tokens.
            logger.info(
                "%s %s -> %d in %.3f s (session %s)",
                request.method,
                request.path,
                response.status,
                elapsed,
                request.headers.get("InterLink-Http-Session", "-"),
            )
        return response

    return middleware


def make_plugin_app(
    *,
    remote: RemoteCluster,
    offloader: Offloader,
    cache: StatusCache,
    health: RemoteHealth,
    offloading: OffloadingSettings,
    metrics: Metrics,
    log_requests: bool,
) -> web.Application:
    app = web.Application(
        client_max_size=routes.MAX_BODY_BYTES,
        middlewares=[_error_middleware(metrics, log_requests=log_requests)],
    )
    app[routes.REMOTE_KEY] = remote
    app[routes.OFFLOADER_KEY] = offloader
    app[routes.CACHE_KEY] = cache
    app[routes.METRICS_KEY] = metrics
    app[routes.HEALTH_KEY] = health
    app[routes.OFFLOADING_KEY] = offloading
    routes.add_routes(app)
    return app
