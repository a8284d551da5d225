"""The remote calls of the plugin: namespaced objects, namespaces, logs, reachability.

Every call asks for the raw response (``_preload_content=False``) and parses JSON itself:
objects stay the dicts the API server sent, and log bytes pass through unchanged
(kubernetes_asyncio would json-decode a log body that happens to be JSON, see
tomplus/kubernetes_asyncio#152). Every call has a client-side timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from sidecar.core import naming
from sidecar.core.pods import LogOptions
from sidecar.core.shape import JsonObject
from sidecar.remote.errors import RemoteError, RemoteForbidden, RemoteGone, RemoteUnreachable

logger = logging.getLogger(__name__)


def _transient(exc: BaseException) -> bool:
    """Worth another try: no answer, server-side trouble, throttling, or the admission
    race of a fresh namespace (its ``default`` ServiceAccount is created asynchronously
    by the controller-manager, and pods are refused until it exists)."""
    if not isinstance(exc, RemoteError):
        return False
    if isinstance(exc, RemoteUnreachable) or exc.status == 429 or exc.status >= 500:
        return True
    return isinstance(exc, RemoteForbidden) and "service account" in exc.message


# kind -> CoreV1Api method suffix (create_namespaced_<x>, read_..., delete_..., list_...)
_KINDS = {
    "Pod": "pod",
    "ConfigMap": "config_map",
    "Secret": "secret",
    "PersistentVolumeClaim": "persistent_volume_claim",
}


class RemoteCluster:
    """The calls the plugin makes on the remote API server."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        timeout: float,
        probe_client: client.ApiClient | None = None,
    ) -> None:
        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        # The health check's own connection pool: on the shared one (100 connections)
        # it queued behind a burst of creates past its 5 s limit, and a server that was
        # serving them was declared down.
        self._probe_client = probe_client
        self._probe_core = client.CoreV1Api(probe_client) if probe_client else self._core
        self._version = client.VersionApi(api_client)
        self._timeout = timeout
        self._last_served = float("-inf")
        # Namespaces this process made sure exist: a create skips the read before its
        # writes (one request fewer per pod). Forgotten when we delete one, and by the
        # create path when a write finds it gone or terminating (forget_namespace).
        self._known_namespaces: set[str] = set()

    def served_since(self, moment: float) -> bool:
        """Whether a call got a 2xx answer after ``moment`` (``time.monotonic()``): the
        server was serving from storage then, whatever a queued check says."""
        return self._last_served > moment

    async def close(self) -> None:
        await self._api_client.close()
        if self._probe_client is not None:
            await self._probe_client.close()

    async def _call(self, method: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> bytes:
        try:
            response = await method(
                *args, _preload_content=False, _request_timeout=self._timeout, **kw
            )
            async with response:
                body: bytes = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RemoteError.unreachable(exc) from None
        if not 200 <= response.status < 300:
            raise RemoteError.from_body(response.status, body)
        self._last_served = time.monotonic()
        return body

    async def _json(self, method: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
        return json.loads(await self._call(method, *args, **kw))

    async def _retrying(self, attempt: Callable[[], Awaitable[Any]], *, budget: float) -> Any:
        async for retry in AsyncRetrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_delay(budget),
            wait=wait_exponential_jitter(initial=0.2, max=2.0),
            reraise=True,
        ):
            with retry:
                return await attempt()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def version(self) -> JsonObject:
        """The remote server's version (``GET /version``): a cheap reachability check."""
        result: JsonObject = await self._json(self._version.get_code)
        return result

    def _method(self, verb: str, kind: str) -> Callable[..., Awaitable[Any]]:
        method: Callable[..., Awaitable[Any]] = getattr(
            self._core, f"{verb}_namespaced_{_KINDS[kind]}"
        )
        return method

    async def create(self, kind: str, namespace: str, body: JsonObject) -> JsonObject:
        """Create ``body``; transient refusals are retried for up to 30 s."""
        create = self._method("create", kind)
        result: JsonObject = await self._retrying(
            lambda: self._json(create, namespace, body), budget=30
        )
        return result

    async def read(self, kind: str, namespace: str, name: str) -> JsonObject:
        result: JsonObject = await self._json(self._method("read", kind), name, namespace)
        return result

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete one object; False if it was already gone."""
        try:
            await self._call(self._method("delete", kind), name, namespace)
        except RemoteError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def remove_label(self, kind: str, namespace: str, name: str, label: str) -> None:
        """Drop one label from an object (JSON merge patch: a null value deletes a key)."""
        body = {"metadata": {"labels": {label: None}}}
        try:
            await self._call(
                self._method("patch", kind),
                name,
                namespace,
                body,
                _content_type="application/merge-patch+json",
            )
        except RemoteError as exc:
            if not exc.not_found:
                raise

    async def list_objects(
        self, kind: str, namespace: str, *, selector: str | None = None, limit: int = 0
    ) -> list[JsonObject]:
        """Objects of ``kind`` in ``namespace`` matching ``selector``; with ``limit``, at
        most that many (the first page: enough to know whether there are any)."""
        kwargs: dict[str, Any] = {"label_selector": selector} if selector else {}
        if limit:
            kwargs["limit"] = limit
        listing = await self._json(self._method("list", kind), namespace, **kwargs)
        items: list[JsonObject] = listing.get("items") or []
        return items

    async def list_all_objects(self, kind: str, selector: str) -> list[JsonObject]:
        """Objects of ``kind`` in every namespace that match ``selector``."""
        method = getattr(self._core, f"list_{_KINDS[kind]}_for_all_namespaces")
        listing = await self._json(method, label_selector=selector)
        items: list[JsonObject] = listing.get("items") or []
        return items

    async def read_namespace(self, name: str, *, probe: bool = False) -> JsonObject | None:
        """Namespace ``name``, or None; ``probe``: over the health check's own pool."""
        core = self._probe_core if probe else self._core
        try:
            result: JsonObject = await self._json(core.read_namespace, name)
        except RemoteError as exc:
            if exc.not_found:
                return None
            raise
        return result

    def forget_namespace(self, name: str) -> None:
        """Namespace ``name`` may be gone: the next ``ensure_namespace`` checks again."""
        self._known_namespaces.discard(name)

    async def delete_namespace(self, name: str) -> bool:
        self.forget_namespace(name)
        try:
            await self._call(self._core.delete_namespace, name)
        except RemoteError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def ensure_namespace(self, name: str, *, timeout: float = 60) -> bool:
        """Make namespace ``name`` exist, labelled as ours; True if this call created it.

        A namespace that is still Terminating (deleted when its last pod went away) is
        waited for and created anew: objects cannot be created in it meanwhile. A
        namespace this process already made sure of costs no request.
        """
        if name in self._known_namespaces:
            return False
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {naming.OFFLOADING_LABEL: naming.OFFLOADING_VALUE},
            },
        }
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            existing = await self.read_namespace(name)
            if existing is None:
                try:
                    await self._retrying(
                        lambda: self._call(self._core.create_namespace, body), budget=10
                    )
                except RemoteError as exc:
                    if not exc.already_exists:
                        raise
                else:
                    self._known_namespaces.add(name)
                    return True
            elif (existing.get("status") or {}).get("phase") != "Terminating":
                self._known_namespaces.add(name)
                return False
            if asyncio.get_running_loop().time() > deadline:
                raise RemoteError(0, "Timeout", f"namespace {name} stayed Terminating")
            await asyncio.sleep(0.5)  # the namespace controller finishes in seconds

    async def list_all_pods(
        self, selector: str, *, page_size: int = 500
    ) -> tuple[list[JsonObject], str]:
        """Pods of every namespace matching ``selector``, and the list's resourceVersion.

        Read in pages of ``page_size`` (``limit``/``continue``), each decoded on its own:
        10,000 pods are about 40 MB of JSON, and one response held that and its parse at
        once. The pages of one list are one consistent snapshot (the API server serves
        every ``continue`` at the first page's resourceVersion), and the last page's
        resourceVersion is the one to watch from. A ``continue`` token the server no
        longer honours (410 Gone: its snapshot was compacted, after 5 to 15 minutes)
        starts the list again. Each pod's ``metadata.managedFields`` is dropped as its
        page is decoded: nobody reads them from a listing, and they are a third to a half
        of a pod's JSON.
        """
        restarts = 0
        items: list[JsonObject] = []
        token = ""
        while True:
            kwargs: dict[str, Any] = {"label_selector": selector, "limit": page_size}
            if token:
                kwargs["_continue"] = token
            try:
                page = await self._json(self._core.list_pod_for_all_namespaces, **kwargs)
            except RemoteError as exc:
                if not (token and isinstance(exc, RemoteGone) and restarts < 3):
                    raise
                restarts += 1
                items, token = [], ""
                continue
            for pod in page.get("items") or []:
                (pod.get("metadata") or {}).pop("managedFields", None)
                items.append(pod)
            meta = page.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def watch_all_pods(
        self, selector: str, resource_version: str, *, timeout_seconds: int, inactivity: float
    ) -> AsyncIterator[JsonObject]:
        """Watch events (``{"type", "object"}``) from ``resource_version``, with bookmarks.

        The server ends the stream after ``timeout_seconds``; no byte for ``inactivity``
        seconds raises TimeoutError (bookmarks arrive about every minute, so a silent
        stream is a dead one). An unparseable line is skipped with a warning.
        """
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=inactivity)
        try:
            # With _preload_content=False the generated method returns the raw response.
            response = cast(
                aiohttp.ClientResponse,
                await self._core.list_pod_for_all_namespaces(
                    label_selector=selector,
                    watch=True,
                    allow_watch_bookmarks=True,
                    resource_version=resource_version,
                    timeout_seconds=timeout_seconds,
                    _preload_content=False,
                    _request_timeout=timeout,
                ),
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise RemoteError.unreachable(exc) from None
        async with response:
            if response.status != 200:
                raise RemoteError.from_body(response.status, await response.read())
            buffer = b""
            try:
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            event = json.loads(line)
                        except ValueError:
                            logger.warning(
                                "ignoring an unparseable watch event (%d bytes)", len(line)
                            )
                            continue
                        if isinstance(event, dict):
                            yield event
            except aiohttp.ClientPayloadError as exc:
                raise RemoteError(0, "Disconnected", f"watch stream broken: {exc!r}") from None

    async def list_nodes(self, selector: str) -> list[JsonObject]:
        listing = await self._json(self._core.list_node, label_selector=selector or None)
        items: list[JsonObject] = listing.get("items") or []
        return items

    async def list_pods_on_nodes(self) -> list[JsonObject]:
        """Every pod of the cluster that is not finished (for free-capacity accounting)."""
        listing = await self._json(
            self._core.list_pod_for_all_namespaces,
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
        )
        items: list[JsonObject] = listing.get("items") or []
        return items

    async def open_log(
        self, namespace: str, name: str, container: str, options: LogOptions
    ) -> aiohttp.ClientResponse:
        """The log stream of a container, unread (the caller streams and closes it).

        The generated client has no ``sinceTime``, so the request is built here; query
        names are the pod log API's (``tailLines``, ``limitBytes``, ...).
        """
        query: list[tuple[str, str]] = [
            ("follow", str(options.follow).lower()),
            ("timestamps", str(options.timestamps).lower()),
            ("previous", str(options.previous).lower()),
        ]
        if container:
            query.append(("container", container))
        if options.tail:
            query.append(("tailLines", str(options.tail)))
        if options.limit_bytes:
            query.append(("limitBytes", str(options.limit_bytes)))
        if options.since_seconds:
            query.append(("sinceSeconds", str(options.since_seconds)))
        elif options.since_time is not None:
            stamp = options.since_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            query.append(("sinceTime", stamp))
        # Headers come at once even when following; the body may never end.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        try:
            response: aiohttp.ClientResponse = await self._api_client.call_api(
                "/api/v1/namespaces/{namespace}/pods/{name}/log",
                "GET",
                path_params={"namespace": namespace, "name": name},
                query_params=query,
                header_params={"Accept": "*/*"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
                _return_http_data_only=True,
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise RemoteError.unreachable(exc) from None
        if response.status != 200:
            body = await response.read()
            response.release()
            raise RemoteError.from_body(response.status, body)
        return response

    async def find_pod(self, namespace: str, pod_uid: str) -> JsonObject | None:
        """The remote pod of local pod ``pod_uid`` (found by label), or None."""
        items = await self.list_objects("Pod", namespace, selector=naming.pod_selector(pod_uid))
        return items[0] if items else None
