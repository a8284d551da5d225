"""Building the kubernetes_asyncio client for the remote cluster from the settings.

Fixes upstream's ``k8s.client_configuration`` bug: the configuration that the kubeconfig
was loaded into is the one the client uses (upstream loaded into one object and then
built the client from the library default, so every call went to http://localhost).
An inline kubeconfig (``k8s.kubeconfig``) is loaded from memory, never written to disk.

Every call the client makes is counted (``sidecar_remote_requests_total``) and timed
(``sidecar_remote_request_duration_seconds``) in one place: the client's
``rest_client.request``, which every generated method and ``call_api`` go through. The
labels come from the request alone (``remote_call_labels``): the verb from the HTTP
method, the path's shape and the ``watch`` query; the resource from the path, with names
and namespaces cut out. The time is the time to the response headers: our calls ask for
the raw response (``_preload_content=False``), so a watch or a followed log is counted
when its stream starts and is not timed any further.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from metrics import ERROR_CODE, OTHER, REMOTE_RESOURCES, Metrics
from sidecar.settings import K8sSettings


class KubeconfigError(Exception):
    """The remote cluster's credentials cannot be loaded; names the key to fix."""


def _kubeconfig_file(settings: K8sSettings) -> Path | None:
    """The kubeconfig file to load, or None to use the inline ``k8s.kubeconfig``."""
    path = Path(settings.kubeconfig_path)
    if path.is_file():
        return path
    if settings.kubeconfig is None:
        raise KubeconfigError(
            f"k8s.kubeconfig_path: {path} does not exist and k8s.kubeconfig is not set"
        )
    return None


async def make_api_client(
    settings: K8sSettings, *, metrics: Metrics | None = None
) -> client.ApiClient:
    """An ApiClient for the remote cluster, its calls counted in ``metrics`` (when given).
    Raises KubeconfigError with the key to fix."""
    configuration = client.Configuration()
    path = _kubeconfig_file(settings)
    try:
        if path is not None:
            await config.load_kube_config(config_file=str(path), client_configuration=configuration)
        else:
            await config.load_kube_config_from_dict(
                config_dict=dict(settings.kubeconfig or {}), client_configuration=configuration
            )
    except Exception as exc:  # noqa: BLE001 - the loader raises many types; all mean "bad file"
        source = "k8s.kubeconfig" if path is None else f"k8s.kubeconfig_path ({path})"
        raise KubeconfigError(f"{source}: cannot load the kubeconfig: {exc}") from None
    for key, value in settings.client_configuration.items():
        setattr(configuration, key, value)
    api_client = client.ApiClient(configuration=configuration)
    if metrics is not None:
        instrument(api_client, metrics)
    return api_client


# --- remote call metrics --------------------------------------------------------------

# Subresources that open a stream to a container or a port rather than read or write an
# object: the API server's verb for them is "connect", whatever the HTTP method.
_CONNECT_SUBRESOURCES = frozenset({"portforward", "exec", "attach", "proxy"})
# Subresources of a namespace object (/api/v1/namespaces/{name}/<these>), as opposed to
# a namespaced collection (/api/v1/namespaces/{namespace}/<resource>).
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}

Query = Iterable[tuple[str, object]] | Mapping[str, object] | None


def _watching(query: Query) -> bool:
    pairs = _pairs(query)
    return any(key == "watch" and str(value).lower() in ("true", "1") for key, value in pairs)


def _resource_path(segments: list[str]) -> tuple[list[str], bool] | None:
    """(``[resource]``, ``[resource, name]`` or ``[resource, name, subresource, ...]``,
    whether the path is a deprecated ``/watch/`` one) of an API path split on ``/``;
    None when the path is not a resource path."""
    if segments[:2] == ["api", "v1"]:
        rest = segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 3:
        rest = segments[3:]  # /apis/<group>/<version>/...
    else:
        return None
    watch = rest[:1] == ["watch"]
    if watch:
        rest = rest[1:]
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in _NAMESPACE_SUBRESOURCES:
        rest = rest[2:]  # /namespaces/<namespace>/<resource>...
    return (rest, watch) if rest else None


def remote_call_labels(method: str, path: str, query: Query = None) -> tuple[str, str]:
    """(verb, resource) of one remote API call, from ``REMOTE_VERBS`` and
    ``REMOTE_RESOURCES`` only: never a name, a namespace or a uid.

    ``path`` is the URL path without the server's own prefix; ``query`` the query
    parameters (pairs or a mapping).
    """
    method = method.upper()
    segments = [part for part in path.split("/") if part]
    if segments == ["version"]:
        return ("get" if method == "GET" else OTHER), "version"
    found = _resource_path(segments)
    if found is None:
        resource, named, watch = OTHER, True, _watching(query)
    else:
        parts, watch = found
        watch = watch or _watching(query)
        named = len(parts) > 1
        resource = parts[0]
        if len(parts) > 2:
            sub = parts[2]
            resource = f"{resource}/{sub}" if len(parts) == 3 or sub == "proxy" else OTHER
            if sub in _CONNECT_SUBRESOURCES:
                return "connect", resource if resource in REMOTE_RESOURCES else OTHER
        if resource not in REMOTE_RESOURCES:
            resource = OTHER
    if method == "GET":
        verb = "watch" if watch else "get" if named else "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _WRITE_VERBS.get(method, OTHER)
    return verb, resource


@dataclass(slots=True)
class RemoteCall:
    """One remote call being timed; set ``code`` to the HTTP status when it answers."""

    code: str | None = None


@contextmanager
def remote_call(metrics: Metrics, verb: str, resource: str) -> Iterator[RemoteCall]:
    """Count and time one remote call (the block ends when the headers are in).

    An ApiException (a preloaded call's error status) gives its status; any other
    exception, ``error`` unless the block set a code first. A call cancelled before it
    had an answer is not counted: it has no outcome.
    """
    call = RemoteCall()
    started = time.perf_counter()
    try:
        yield call
    except ApiException as exc:
        call.code = str(exc.status) if exc.status else ERROR_CODE
        raise
    except Exception:
        call.code = call.code or ERROR_CODE
        raise
    finally:
        if call.code is not None:
            metrics.remote_requests.labels(verb, resource, call.code).inc()
            metrics.remote_request_duration.labels(verb, resource).observe(
                time.perf_counter() - started
            )


def instrument(api_client: client.ApiClient, metrics: Metrics) -> None:
    """Count and time every request ``api_client`` sends (wraps its REST client)."""
    rest = api_client.rest_client
    send: Callable[..., Awaitable[Any]] = rest.request
    prefix = urlsplit(str(api_client.configuration.host)).path.rstrip("/")

    async def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        query = kwargs["query_params"] if "query_params" in kwargs else (args or (None,))[0]
        split = urlsplit(url)
        path = split.path[len(prefix) :] if split.path.startswith(prefix) else split.path
        verb, resource = remote_call_labels(method, path, [*parse_qsl(split.query), *_pairs(query)])
        with remote_call(metrics, verb, resource) as call:
            response = await send(method, url, *args, **kwargs)
            call.code = str(response.status)
        return response

    rest.request = request  # type: ignore[method-assign]


def _pairs(query: Query) -> list[tuple[str, object]]:
    if isinstance(query, Mapping):
        return list(query.items())
    return list(query or ())
