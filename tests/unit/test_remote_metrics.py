"""Remote call metrics: request path -> (verb, resource), and the wrapped REST client."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import CollectorRegistry

from metrics import REMOTE_RESOURCES, REMOTE_VERBS, Metrics, make_metrics
from sidecar.remote.client import instrument, remote_call, remote_call_labels

UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
NS = "offloading-default"
POD = f"hello-{UID}"


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        # every call RemoteCluster makes
        ("GET", "/version", None, ("get", "version")),
        ("GET", "/version/", None, ("get", "version")),
        ("POST", f"/api/v1/namespaces/{NS}/pods", None, ("create", "pods")),
        ("GET", f"/api/v1/namespaces/{NS}/pods/{POD}", None, ("get", "pods")),
        ("DELETE", f"/api/v1/namespaces/{NS}/pods/{POD}", None, ("delete", "pods")),
        (
            "GET",
            f"/api/v1/namespaces/{NS}/pods",
            [("labelSelector", f"interlink.io/source.pod_uid={UID}")],
            ("list", "pods"),
        ),
        ("POST", f"/api/v1/namespaces/{NS}/configmaps", None, ("create", "configmaps")),
        ("GET", f"/api/v1/namespaces/{NS}/configmaps/x-{UID}", None, ("get", "configmaps")),
        ("DELETE", f"/api/v1/namespaces/{NS}/secrets/x-{UID}", None, ("delete", "secrets")),
        (
            "GET",
            "/api/v1/secrets",
            [("labelSelector", "interlink.io=offloading")],
            ("list", "secrets"),
        ),
        ("GET", "/api/v1/configmaps", None, ("list", "configmaps")),
        (
            "PATCH",
            f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data",
            None,
            ("patch", "persistentvolumeclaims"),
        ),
        ("GET", f"/api/v1/namespaces/{NS}", None, ("get", "namespaces")),
        ("POST", "/api/v1/namespaces", None, ("create", "namespaces")),
        ("DELETE", f"/api/v1/namespaces/{NS}", None, ("delete", "namespaces")),
        ("PUT", f"/api/v1/namespaces/{NS}/finalize", None, ("update", "namespaces/finalize")),
        ("GET", f"/api/v1/namespaces/{NS}/status", None, ("get", "namespaces/status")),
        ("GET", "/api/v1/pods", [("labelSelector", "interlink.io=offloading")], ("list", "pods")),
        ("GET", "/api/v1/pods", [("watch", True), ("resourceVersion", "42")], ("watch", "pods")),
        ("GET", "/api/v1/pods", {"watch": "true"}, ("watch", "pods")),
        ("GET", "/api/v1/pods", [("watch", False)], ("list", "pods")),
        ("GET", "/api/v1/watch/namespaces/x/pods", None, ("watch", "pods")),
        ("GET", "/api/v1/nodes", [("labelSelector", "type=kwok")], ("list", "nodes")),
        ("GET", f"/api/v1/namespaces/{NS}/pods/{POD}/log", None, ("get", "pods/log")),
        ("PATCH", f"/api/v1/namespaces/{NS}/pods/{POD}/status", None, ("patch", "pods/status")),
        # websockets and other streams: connect, whatever the method
        (
            "GET",
            f"/api/v1/namespaces/{NS}/pods/{POD}/portforward",
            [("ports", 8080)],
            ("connect", "pods/portforward"),
        ),
        ("POST", f"/api/v1/namespaces/{NS}/pods/{POD}/exec", None, ("connect", "pods/exec")),
        ("GET", f"/api/v1/namespaces/{NS}/pods/{POD}/proxy/a/b", None, ("connect", "pods/proxy")),
        ("GET", f"/api/v1/namespaces/{NS}/services/web/proxy", None, ("connect", "other")),
        # collections deleted at once
        ("DELETE", f"/api/v1/namespaces/{NS}/configmaps", None, ("deletecollection", "configmaps")),
        # named API groups: the plural resource
        ("GET", "/apis/apps/v1/namespaces/x/deployments/web", None, ("get", "other")),
        ("GET", "/apis/events.k8s.io/v1/events", None, ("list", "events")),
        # anything unrecognised is "other", never part of the path
        ("GET", f"/api/v1/namespaces/{NS}/widgets/{POD}", None, ("get", "other")),
        ("GET", f"/api/v1/namespaces/{NS}/pods/{POD}/{UID}", None, ("get", "other")),
        ("GET", f"/api/v1/namespaces/{NS}/pods/{POD}/log/extra", None, ("get", "other")),
        ("GET", "/api", None, ("get", "other")),
        ("GET", "/apis", None, ("get", "other")),
        ("GET", "/openapi/v2", None, ("get", "other")),
        ("GET", f"/{UID}", None, ("get", "other")),
        ("HEAD", "/api/v1/pods", None, ("other", "pods")),
        ("OPTIONS", "/version", None, ("other", "version")),
    ],
)
def test_a_request_maps_to_a_closed_verb_and_resource(
    method: str, path: str, query: Any, expected: tuple[str, str]
) -> None:
    verb, resource = remote_call_labels(method, path, query)
    assert (verb, resource) == expected
    assert verb in REMOTE_VERBS and resource in REMOTE_RESOURCES


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/namespaces/{NS}/pods/{POD}",
        f"/api/v1/namespaces/{POD}/{UID}/{NS}/{POD}/{UID}",
        f"/apis/{UID}/{POD}/{NS}",
        f"/api/v1/{POD}",
        f"/api/v1/namespaces/{NS}/configmaps/{POD}/{UID}",
    ],
)
def test_no_name_namespace_or_uid_ever_reaches_a_label(path: str) -> None:
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "BREW"):
        labels = remote_call_labels(method, path, [("watch", "1")])
        for value in labels:
            assert UID not in value and POD not in value and NS not in value


def _metrics() -> Metrics:
    return make_metrics(CollectorRegistry(), version="test")


def _count(metrics: Metrics, verb: str, resource: str, code: str) -> float | None:
    return metrics.registry.get_sample_value(
        "sidecar_remote_requests_total", {"verb": verb, "resource": resource, "code": code}
    )


def _observed(metrics: Metrics, verb: str, resource: str) -> float | None:
    return metrics.registry.get_sample_value(
        "sidecar_remote_request_duration_seconds_count", {"verb": verb, "resource": resource}
    )


def test_a_call_is_counted_with_its_code_or_error() -> None:
    metrics = _metrics()
    with remote_call(metrics, "get", "pods") as call:
        call.code = "404"
    with pytest.raises(aiohttp.ClientConnectionError), remote_call(metrics, "list", "pods"):
        raise aiohttp.ClientConnectionError("refused")
    with pytest.raises(ApiException), remote_call(metrics, "create", "pods"):
        raise ApiException(status=422, reason="Unprocessable Entity")
    with pytest.raises(ValueError, match="handshake"), remote_call(metrics, "connect", "pods/x"):
        raise ValueError("handshake")

    assert _count(metrics, "get", "pods", "404") == 1
    assert _count(metrics, "list", "pods", "error") == 1
    assert _count(metrics, "create", "pods", "422") == 1
    # labels outside the closed sets are clamped
    assert _count(metrics, "connect", "other", "error") == 1
    assert _observed(metrics, "get", "pods") == 1
    assert _observed(metrics, "list", "pods") == 1


async def test_the_rest_client_of_an_api_client_is_counted() -> None:
    """Every request of the ApiClient goes through the wrapped REST client, whatever the
    server's path prefix; the fake below stands in for the network only."""
    configuration = client.Configuration(host="https://remote.example:6443/k8s/clusters/c-1")
    api_client = client.ApiClient(configuration=configuration)
    sent: list[tuple[str, str]] = []

    class Response:
        def __init__(self, status: int) -> None:
            self.status = status

    async def fake_send(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append((method, url))
        if "unreachable" in url:
            raise aiohttp.ClientConnectionError("refused")
        return Response(404 if "missing" in url else 200)

    api_client.rest_client.request = fake_send  # type: ignore[method-assign]
    metrics = _metrics()
    instrument(api_client, metrics)
    try:
        core = client.CoreV1Api(api_client)
        await core.list_pod_for_all_namespaces(
            label_selector="interlink.io=offloading", _preload_content=False
        )
        await core.list_pod_for_all_namespaces(watch=True, _preload_content=False)
        await core.read_namespaced_config_map("missing", NS, _preload_content=False)
        await core.create_namespaced_pod(NS, {"metadata": {"name": POD}}, _preload_content=False)
        with pytest.raises(aiohttp.ClientConnectionError):
            await core.read_namespace("unreachable", _preload_content=False)
        await client.VersionApi(api_client).get_code(_preload_content=False)
    finally:
        await api_client.close()

    assert len(sent) == 6
    assert _count(metrics, "list", "pods", "200") == 1
    assert _count(metrics, "watch", "pods", "200") == 1
    assert _count(metrics, "get", "configmaps", "404") == 1
    assert _count(metrics, "create", "pods", "200") == 1
    assert _count(metrics, "get", "namespaces", "error") == 1
    assert _count(metrics, "get", "version", "200") == 1
