"""/metrics after a create / status / getLogs / delete cycle: every metric of the
catalogue is there with its help text, the cycle shows in the API, remote and offload
series, and no label value is a uid, a pod name or a namespace."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from metrics import catalogue, make_metrics, register_phase_collector
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar
from tests.integration import plugin_client
from tests.integration.plugin_client import call, create_body, new_pod, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ROUTES = {"/create", "/delete", "/status", "/getLogs", "unmatched"}
# label -> the closed set its values come from (labels not listed: checked for names only)
CLOSED: dict[str, frozenset[str]] = {
    "verb": catalogue.REMOTE_VERBS,
    "resource": catalogue.REMOTE_RESOURCES,
    "method": catalogue.HTTP_METHODS | {catalogue.OTHER},
    "route": frozenset(ROUTES),
    "phase": frozenset(catalogue.POD_PHASES),
    "type": catalogue.WATCH_EVENT_TYPES,
    "reason": frozenset(catalogue.WATCH_RESTART_REASONS) | set(catalogue.TUNNEL_ERROR_REASONS),
    "kind": frozenset(catalogue.REAPED_KINDS),
    "direction": frozenset(catalogue.TUNNEL_DIRECTIONS),
    "state": frozenset({"pending", "open", "error"}),
    "code": catalogue.HTTP_CODES | {catalogue.ERROR_CODE, catalogue.OTHER},
}


def expected_families() -> dict[str, str]:
    """Family name as the text parser reports it -> type, from the catalogue itself."""
    registry = CollectorRegistry()
    register_phase_collector(make_metrics(registry, version="test").registry, dict)
    expected = {}
    for family in registry.collect():
        if family.type == "info":  # exposed as the gauge <name>_info
            expected[f"{family.name}_info"] = "gauge"
        else:
            expected[family.name] = family.type
    return expected


def scrape(sidecar: SidecarProcess) -> dict[str, Metric]:
    with urllib.request.urlopen(sidecar.ops_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Metric], sample: str, **labels: str) -> float:
    """Sum of the samples named ``sample`` whose labels include ``labels``."""
    family_name = re.sub(r"_(total|bucket|count|sum|created)$", "", sample)
    family = families.get(family_name) or families[sample]
    return sum(
        s.value for s in family.samples if s.name == sample and labels.items() <= s.labels.items()
    )


async def _cycle(sidecar: SidecarProcess, control_plane: LocalCluster) -> dict[str, Any]:
    pod = new_pod("main")
    code, body = await call(sidecar, "POST", "/create", create_body(pod))
    assert code == 200, body

    async def state() -> str:
        code, raw = await call(sidecar, "GET", "/status", [pod])
        assert code == 200, raw
        return next(iter(json.loads(raw)[0]["containers"][0]["state"]))

    await poll("the pod to run", state, lambda s: s == "running")
    marker = f"metrics {pod['metadata']['uid']}"
    control_plane.append_pod_log(marker)
    code, body = await call(
        sidecar, "GET", "/getLogs", plugin_client.log_request(pod, "main", Tail=50)
    )
    assert code == 200, body
    code, body = await call(sidecar, "POST", "/delete", pod)
    assert code == 200, body
    await poll("the pod to be reported gone", state, lambda s: s == "terminated")
    return pod


async def test_metrics_after_a_create_status_logs_delete_cycle(
    start_sidecar: StartSidecar, control_plane: LocalCluster
) -> None:
    sidecar = start_sidecar()
    pod = await _cycle(sidecar, control_plane)
    # The pod's objects are deleted (at once, or by the janitor a moment later).
    families = await poll(
        "the delete to finish",
        lambda: asyncio.to_thread(scrape, sidecar),
        lambda f: value(f, "sidecar_janitor_pending_deletes") == 0,
    )

    # Every metric of the catalogue, with its type and a help text.
    expected = expected_families()
    missing = sorted(set(expected) - set(families))
    assert not missing, f"not on /metrics: {missing}"
    for name, kind in expected.items():
        assert families[name].type == kind, name
        assert families[name].documentation.strip(), f"{name} has no help text"
    ours = {name for name in families if name.startswith("sidecar_")}
    assert ours == set(expected), f"not in the catalogue: {sorted(ours - set(expected))}"

    # The plugin API saw each route of the cycle.
    for route, method in (
        ("/create", "POST"),
        ("/status", "GET"),
        ("/getLogs", "GET"),
        ("/delete", "POST"),
    ):
        assert (
            value(families, "sidecar_api_requests_total", route=route, method=method, code="200")
            >= 1
        ), route
        assert value(families, "sidecar_api_request_duration_seconds_count", route=route) >= 1

    # The remote calls behind it, by verb and resource, timed.
    remote = "sidecar_remote_requests_total"
    for verb, resource, code in (
        ("get", "version", "200"),  # the prober
        ("list", "pods", "200"),  # the watcher's list; the create's lookup
        ("watch", "pods", "200"),
        ("list", "configmaps", "200"),  # the orphan sweep at start
        ("list", "secrets", "200"),
        ("create", "pods", "201"),
        ("get", "pods/log", "200"),
        ("delete", "pods", "200"),
    ):
        assert value(families, remote, verb=verb, resource=resource, code=code) >= 1, (
            verb,
            resource,
            code,
        )
        assert (
            value(
                families,
                "sidecar_remote_request_duration_seconds_count",
                verb=verb,
                resource=resource,
            )
            >= 1
        ), (verb, resource)
    assert value(families, "sidecar_remote_up") == 1

    # The offload and status series.
    assert value(families, "sidecar_offload_creates_total", outcome="created") == 1
    assert (
        value(families, "sidecar_offload_deletes_total", outcome="done")
        + value(families, "sidecar_offload_deletes_total", outcome="deferred")
        == 1
    )
    assert value(families, "sidecar_watch_events_total", type="ADDED") >= 1
    assert value(families, "sidecar_status_propagation_delay_seconds_count") >= 1
    assert {s.labels["phase"] for s in families["sidecar_remote_pods"].samples} == set(
        catalogue.POD_PHASES
    )
    assert value(families, "sidecar_process_root_task_up", task="janitor") == 1
    assert value(families, "sidecar_build_info") == 1

    # Bounded labels: no uid, pod name or namespace, and every value from its set.
    names = {pod["metadata"]["uid"], pod["metadata"]["name"], "offloading-default"}
    for family in families.values():
        if not family.name.startswith("sidecar_"):
            continue
        for sample in family.samples:
            for label, text in sample.labels.items():
                assert not UUID.search(text), (sample.name, label, text)
                assert not any(n in text for n in names), (sample.name, label, text)
                if label in CLOSED:
                    assert text in CLOSED[label], (sample.name, label, text)
