"""The plugin API: ``/create``, ``/delete``, ``/status`` and ``/getLogs`` (interLink's wire).

Facts from interLink's code that shape these handlers (interlink-plugin-api.md):

* success is exactly 200; any other code marks the call failed, and for ``/create`` the
  response body becomes the pod's failure message, so errors are one readable line;
* ``/status`` and ``/getLogs`` arrive as GET with a JSON body; POST is accepted too;
* ``/status`` with ``[]`` is the virtual node's health ping: 200 only when the remote
  API server answers (the node goes NotReady otherwise);
* response headers must come within 120 s.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from sidecar.api import wire
from sidecar.offload.service import CreateFailed, Offloader
from sidecar.offload.translate import remote_namespace_for
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.health import RemoteHealth
from sidecar.settings import OffloadingSettings
from sidecar.status import mapping

logger = logging.getLogger(__name__)

REMOTE_KEY = web.AppKey("remote", RemoteCluster)
OFFLOADER_KEY = web.AppKey("offloader", Offloader)
HEALTH_KEY = web.AppKey("health", RemoteHealth)
OFFLOADING_KEY = web.AppKey("offloading", OffloadingSettings)

# interLink sends whole pods with their ConfigMaps and Secrets (1 MiB each at most).
MAX_BODY_BYTES = 64 * 1024 * 1024


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(value), status=status, content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    """Errors are plain text: interLink copies the body into the pod's status message."""
    return web.Response(text=message + "\n", status=status, content_type="text/plain")


async def _body(request: web.Request) -> Any:
    return wire.decode_json(await request.read())


def _remote_namespace(request: web.Request, namespace: str) -> str:
    return remote_namespace_for(namespace, request.app[OFFLOADING_KEY])


async def create(request: web.Request) -> web.Response:
    """``RetrievedPodData`` in, ``{"PodUID", "PodJID"}`` out (PodJID: the remote pod uid)."""
    req = wire.parse_create(await _body(request))
    try:
        jid = await request.app[OFFLOADER_KEY].create(req)
    except CreateFailed as exc:
        return error_response(exc.status, exc.message)
    return json_response({"PodUID": req.ref.uid, "PodJID": jid})


async def delete(request: web.Request) -> web.Response:
    """A v1.Pod in; its remote objects are deleted by label, now or by the janitor.

    Always 200 once the delete is journalled: interLink never retries a delete.
    """
    ref = wire.pod_ref(await _body(request))
    done = await request.app[OFFLOADER_KEY].delete(ref)
    if done:
        return json_response(f"Pod '{ref.uid}' deleted")
    return json_response(f"Pod '{ref.uid}' delete accepted; finishing in the background")


async def status(request: web.Request) -> web.Response:
    """A list of v1.Pod in, one ``PodStatus`` per pod out; ``[]`` is the ping."""
    pods = wire.parse_pod_list(await _body(request))
    health = request.app[HEALTH_KEY]
    if not pods:
        if not health.up:
            return error_response(503, health.describe())
        return json_response({"status": "ok"})
    remote = request.app[REMOTE_KEY]
    answer = []
    for pod in pods:
        ref = wire.pod_ref(pod)
        namespace = _remote_namespace(request, ref.namespace)
        found = await remote.find_pod(namespace, ref.uid)
        answer.append(mapping.pod_status(pod, ref, found, remote_location=f"namespace {namespace}"))
    return json_response(answer)


async def get_logs(request: web.Request) -> web.Response:
    """A ``LogStruct`` in, the container's log bytes out, unchanged."""
    req = wire.parse_log_request(await _body(request))
    remote = request.app[REMOTE_KEY]
    namespace = _remote_namespace(request, req.ref.namespace)
    pod = await remote.find_pod(namespace, req.ref.uid)
    if pod is None:
        return error_response(
            404,
            f"no remote pod for {req.ref.namespace}/{req.ref.name} (uid {req.ref.uid}) "
            f"in namespace {namespace}",
        )
    spec = pod.get("spec") or {}
    names = [c["name"] for key in ("initContainers", "containers") for c in spec.get(key) or []]
    if req.container and req.container not in names:
        return error_response(
            404,
            f"pod {req.ref.namespace}/{req.ref.name} has no container {req.container!r} "
            f"(containers: {', '.join(names)})",
        )
    data = await remote.read_log(namespace, pod["metadata"]["name"], req.container, req.options)
    return web.Response(body=data, content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/create", create)
    app.router.add_post("/delete", delete)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/status", status)
        app.router.add_route(method, "/getLogs", get_logs)
