"""The plugin API aiohttp application: routes, error mapping and per-request metrics.

Error mapping (every answer but 200 is one line of text naming the problem):

* ``PluginError`` (``sidecar.core.shape``): its status and message as they are; a
  ``WireError`` (the request was wrong: 400 not JSON or too deep, 413 too big, 422 a
  field) is raised before anything is journalled or sent, the offloader's
  ``CreateFailed`` and ``DeletedFirst`` (409) after;
* ``RemoteError``: a remote 400/422 refused a value of the request (the caller's
  mistake, which only the remote API server could judge: 422 with its message); a
  remote 404: 404; no answer: 503; anything else: 502;
* a client gone while its body was read: counted as 499, logged at DEBUG, no answer;
* anything else is a bug: 500 with a generic line, the traceback in the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from metrics import Metrics
from sidecar.api import limits, routes
from sidecar.core.shape import PluginError
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
        except PluginError as exc:
            response = routes.error_response(exc.status, exc.message)
        except routes.ClientGone as exc:
            logger.debug(
                "%s %s: the client left mid-request: %s", request.method, request.path, exc
            )
            response = web.Response(status=routes.CLIENT_GONE, reason="Client Closed Request")
        except RemoteError as exc:
            code = exc.plugin_status()
            if code == 422:
                response = routes.error_response(code, f"remote API server refused it: {exc}")
            else:
                response = routes.error_response(code, f"remote API server: {exc}")
            logger.warning("%s %s failed: %s", request.method, request.path, exc)
        except web.HTTPException as exc:
            # A text of its own (not aiohttp's "<status>: <reason>") says more.
            text = exc.text or ""
            own = text.strip() and text.strip() != f"{exc.status}: {exc.reason}"
            response = routes.error_response(exc.status, text if own else exc.reason)
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
    max_concurrent_requests: int = 512,
    body_timeout: float = 60.0,
) -> web.Application:
    app = web.Application(
        client_max_size=routes.MAX_BODY_BYTES,
        # The limit inside the error middleware: its 503 is counted like any answer.
        middlewares=[
            _error_middleware(metrics, log_requests=log_requests),
            limits.concurrency_limit(max_concurrent_requests, metrics.api_in_flight),
        ],
    )
    app[routes.BODY_TIMEOUT_KEY] = body_timeout
    app[routes.REMOTE_KEY] = remote
    app[routes.OFFLOADER_KEY] = offloader
    app[routes.CACHE_KEY] = cache
    app[routes.METRICS_KEY] = metrics
    app[routes.HEALTH_KEY] = health
    app[routes.OFFLOADING_KEY] = offloading
    routes.add_routes(app)
    return app
