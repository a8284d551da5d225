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

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from metrics import Metrics
from sidecar.api import limits, logstart, wire
from sidecar.core.shape import JsonObject
from sidecar.offload.service import Offloader
from sidecar.offload.translate import remote_namespace_for
from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError
from sidecar.remote.health import RemoteHealth, create_refusal
from sidecar.settings import OffloadingSettings
from sidecar.status import mapping
from sidecar.status.absence import why_absent
from sidecar.status.asked import note_logs, note_status
from sidecar.status.cache import StatusCache, made_for

logger = logging.getLogger(__name__)

REMOTE_KEY = web.AppKey("remote", RemoteCluster)
OFFLOADER_KEY = web.AppKey("offloader", Offloader)
HEALTH_KEY = web.AppKey("health", RemoteHealth)
OFFLOADING_KEY = web.AppKey("offloading", OffloadingSettings)
CACHE_KEY = web.AppKey("cache", StatusCache)
METRICS_KEY = web.AppKey("metrics", Metrics)
BODY_TIMEOUT_KEY = web.AppKey("body_timeout", float)

# How often a following log stream checks whether its client went away (aiohttp does not
# cancel handlers on disconnect, and a quiet log gives no write to fail on).
DISCONNECT_CHECK_SECONDS = 0.5
HEADER_GRACE_SECONDS = 1.0

# interLink sends whole pods with their ConfigMaps and Secrets (1 MiB each at most).
MAX_BODY_BYTES = 64 * 1024 * 1024
# Longest error line: interLink copies it into the pod's status message.
MAX_ERROR_CHARS = 1024
# nginx's code for "the client closed the connection before the answer": counted in
# sidecar_api_requests_total, never sent (nobody is left to read it).
CLIENT_GONE = 499


class ClientGone(Exception):
    """The client went away while its request body was being read: not an error."""


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(value), status=status, content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    """Errors are one line of plain text: interLink copies the body into the pod's status
    message. Line breaks are folded, the length capped, and characters UTF-8 cannot carry
    (lone surrogates a JSON body can smuggle in) escaped."""
    line = " ".join(message.split()).encode("utf-8", "backslashreplace").decode("utf-8")
    if len(line) > MAX_ERROR_CHARS:
        line = line[: MAX_ERROR_CHARS - 3] + "..."
    return web.Response(text=line + "\n", status=status, content_type="text/plain")


async def _body(request: web.Request) -> Any:
    """The request body as JSON. Too big: 413 before reading it (Content-Length is
    always set by interLink); cut short by a client that left: ClientGone."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise wire.WireError(
            413,
            f"request body of {request.content_length} bytes is over the limit of "
            f"{MAX_BODY_BYTES} bytes",
        )
    try:
        raw = await limits.read_body(request, request.app[BODY_TIMEOUT_KEY])
    except web.HTTPRequestEntityTooLarge:
        raise wire.WireError(
            413, f"request body is over the limit of {MAX_BODY_BYTES} bytes"
        ) from None
    except (ConnectionResetError, aiohttp.ClientPayloadError) as exc:
        if request.transport is None or request.transport.is_closing():
            raise ClientGone(str(exc)) from None
        raise wire.WireError(400, f"request body could not be read: {exc}") from None
    return wire.decode_json(raw)


def _remote_namespace(request: web.Request, namespace: str) -> str:
    return remote_namespace_for(namespace, request.app[OFFLOADING_KEY])


async def create(request: web.Request) -> web.Response:
    """``RetrievedPodData`` in, ``{"PodUID", "PodJID"}`` out (PodJID: the remote pod uid)."""
    req = wire.parse_create(await _body(request))
    if (refusal := create_refusal(request.app[HEALTH_KEY])) is not None:
        return error_response(503, refusal)  # the remote cannot serve: fail fast, not in 30 s
    # CreateFailed and DeletedFirst (409) are PluginErrors: the error middleware answers.
    jid = await request.app[OFFLOADER_KEY].create(req)
    return json_response({"PodUID": req.ref.uid, "PodJID": jid})


async def delete(request: web.Request) -> web.Response:
    """A v1.Pod in; its remote objects are deleted by label, now or by the janitor.

    200 once the delete is done or journalled: interLink never retries a delete. 503
    when it is neither (the journal cannot be written and the remote delete did not
    finish at once): honest, and logged on interLink's side.
    """
    ref = wire.pod_ref(await _body(request))
    # Not finished and not journalled: DeleteNotRecorded, a PluginError (503), no promise.
    done = await request.app[OFFLOADER_KEY].delete(ref)
    if done:
        return json_response(f"Pod '{ref.uid}' deleted")
    return json_response(f"Pod '{ref.uid}' delete accepted; finishing in the background")


async def status(request: web.Request) -> web.Response:
    """A list of v1.Pod in, one ``PodStatus`` per pod out, from the status cache only;
    ``[]`` is the ping.

    An answer about a remote pod is made once per change of that pod: a timeless one
    (``mapping.answer_of``) is kept encoded in the cache with what it was made from
    (the request's ``PodRef`` and ``LocalView.key``), and the next poll with the same
    local pod gets those bytes until a watch event replaces the remote pod.
    """
    pods = wire.parse_status_pods(await _body(request))
    # A wrong type is a 422 before anything.
    views = [mapping.read_local(pod, f"[{index}]") for index, (pod, _) in enumerate(pods)]
    # interLink still asks: evidence for the orphan sweep.
    note_status(request.app, [pod for pod, _ in pods])
    health = request.app[HEALTH_KEY]
    if not pods:
        if not health.up:
            return error_response(503, health.describe())
        answer: dict[str, Any] = {"status": "ok"}
        if health.resources:
            answer["resources"] = health.resources
        return json_response(answer)
    cache = request.app[CACHE_KEY]
    if not cache.confirmed:
        return error_response(503, cache.describe_unconfirmed())
    offloader = request.app[OFFLOADER_KEY]
    now = datetime.now(UTC)
    answers: list[bytes] = []
    for (pod, ref), view in zip(pods, views, strict=True):
        remote = cache.get_for(ref)
        key = None
        if remote is not None:
            key = (ref, view.key())
            if (kept := cache.answer(ref.uid, remote, key)) is not None:
                answers.append(kept)
                continue
        absence = None
        if remote is None:
            vanished = cache.vanished(ref.uid)
            absence = why_absent(
                pod,
                creating_since=offloader.creating_since(ref.uid),
                deleted_at=vanished.at if vanished else offloader.journal.deleted_at(ref.uid),
            )
        answer, timeless = mapping.answer_of(
            view,
            ref,
            remote,
            remote_location=f"namespace {_remote_namespace(request, ref.namespace)}",
            absence=absence,
            now=now,
        )
        encoded = wire.encode_json(answer)
        if remote is not None and timeless:
            cache.keep_answer(ref.uid, remote, key, encoded)
        answers.append(encoded)
    # A JSON array of the encoded answers: no per-call copy of a kept one.
    return web.Response(
        body=b"[" + b",".join(answers) + b"]", content_type="application/json", charset="utf-8"
    )


async def _client_gone(request: web.Request) -> None:
    # No event exists for "the client went away" in aiohttp's public API: poll it.
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(DISCONNECT_CHECK_SECONDS)


async def get_logs(request: web.Request) -> web.StreamResponse:
    """A ``LogStruct`` in, the container's log bytes out, unchanged and streamed.

    Headers go out as soon as the remote API server answered; with ``Follow`` the body
    ends when the remote stream ends, and the remote stream is closed when the client
    goes away.
    """
    req = wire.parse_log_request(await _body(request))
    note_logs(request.app, req.ref.uid)  # the local pod exists: evidence for the orphan sweep
    remote = request.app[REMOTE_KEY]
    namespace = _remote_namespace(request, req.ref.namespace)
    pod = request.app[CACHE_KEY].get_for(req.ref) or await remote.find_pod(namespace, req.ref.uid)
    if pod is not None and not made_for(pod, req.ref):
        pod = None  # the uid belongs to another local pod: not this caller's logs
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
    pod_name = pod["metadata"]["name"]

    async def current_pod() -> JsonObject | None:
        cached = request.app[CACHE_KEY].get_for(req.ref)
        return cached if cached is not None else await remote.find_pod(namespace, req.ref.uid)

    opening = asyncio.create_task(
        logstart.open_when_started(
            lambda: remote.open_log(namespace, pod_name, req.container, req.options),
            current_pod,
            req.options,
        ),
        name="log-open",
    )
    # A following log may send no header until its first line: answer 200 at once
    # after a short grace (interLink fails calls without headers after 120 s); until
    # then an error can still be a proper status code.
    done, _ = await asyncio.wait([opening], timeout=HEADER_GRACE_SECONDS)
    # raises RemoteError: a 4xx/5xx answer via the middleware
    if done and opening.result() is None:
        return web.Response(status=200, content_type="text/plain")  # nothing to stream
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)
    metrics = request.app[METRICS_KEY]
    metrics.log_streams.inc()

    async def stream() -> None:
        upstream = await opening
        if upstream is None:
            return  # the container never started: an empty log
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        finally:
            upstream.close()

    copier = asyncio.create_task(stream(), name="log-copy")
    watcher = asyncio.create_task(_client_gone(request), name="log-client-watch")
    try:
        finished, _ = await asyncio.wait([copier, watcher], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (copier, watcher, opening):
            task.cancel()
        await asyncio.gather(copier, watcher, opening, return_exceptions=True)
        opened = None
        if not opening.cancelled() and opening.exception() is None:
            opened = opening.result()
        if opened is not None:
            opened.close()  # idempotent; covers a copier cancelled early
        metrics.log_streams.dec()
    error = None if copier.cancelled() else copier.exception()
    # The client leaving (noticed by the watcher, or by a write that failed) is how a
    # follow normally ends: not an error, and nothing more can be written to it.
    if watcher in finished or isinstance(error, ConnectionResetError):
        logger.debug("log stream of %s/%s ended: the client left", req.ref.namespace, req.ref.name)
        return response
    if isinstance(error, RemoteError):
        await response.write(f"error: {error}\n".encode())
    elif error is not None and not isinstance(error, aiohttp.ClientError):
        raise error
    with contextlib.suppress(ConnectionResetError):  # the client may leave right now too
        await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_post("/create", create)
    app.router.add_post("/delete", delete)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/status", status)
        app.router.add_route(method, "/getLogs", get_logs)
