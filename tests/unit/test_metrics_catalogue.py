"""The metric catalogue follows the naming rules, documents every label set, keeps label
values closed; the Grafana dashboard only queries metrics the catalogue has."""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from metrics import Metrics, catalogue, make_metrics, register_phase_collector

DASHBOARD = Path(__file__).resolve().parents[2] / "manifests" / "grafana" / "sidecar-dashboard.json"

NAME = re.compile(r"^sidecar_[a-z]+(_[a-z0-9]+)+$")
# Units that are not base units (seconds, bytes): never in a name.
NON_BASE_UNITS = re.compile(
    r"_(ms|us|ns|millis|milliseconds|microseconds|nanoseconds|minutes|hours|days|"
    r"kb|mb|gb|kib|mib|gib|kilobytes|megabytes|percent)(_|$)"
)
TIME_WORDS = ("duration", "latency", "delay", "age", "time", "elapsed", "wait")
FORBIDDEN_LABELS = {"uid", "pod_uid", "name", "pod", "pod_name", "namespace", "error", "message"}


def _catalogue() -> Metrics:
    metrics = make_metrics(CollectorRegistry(), version="test")
    register_phase_collector(metrics.registry, lambda: {"Running": 1})
    return metrics


def _families(metrics: Metrics) -> list[Metric]:
    return list(metrics.registry.collect())


def exposed_name(family: Metric) -> str:
    """The name a family has on /metrics (counters: ``_total``; info: ``_info``)."""
    suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
    return family.name + suffix


def exposed_sample_names(metrics: Metrics) -> set[str]:
    """Every series name a scrape can contain, including histogram parts."""
    names = set()
    for family in _families(metrics):
        name = exposed_name(family)
        names.add(name)
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"}
    return names


def test_every_metric_is_named_with_base_units_and_documented() -> None:
    families = _families(_catalogue())
    assert len(families) == len({f.name for f in families})
    for family in families:
        name = exposed_name(family)
        assert NAME.match(name), name
        assert not NON_BASE_UNITS.search(name), name
        assert family.documentation.strip(), f"{name} has no help text"
        if family.type == "counter":
            assert name.endswith("_total") and "_total" not in family.name, name
        else:
            assert not name.endswith("_total"), f"{name} is not a counter"
        if family.type == "histogram":
            assert name.endswith(("_seconds", "_bytes")), f"{name}: histogram without a unit"
        if any(word in name for word in TIME_WORDS):
            assert name.endswith(("_seconds", "_seconds_total")), f"{name}: time not in seconds"


def test_no_label_can_carry_a_name_or_uid() -> None:
    metrics = _catalogue()
    for family in _families(metrics):
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), (family.name, sample.labels)
    for field in _metric_fields():
        labelnames = set(getattr(getattr(metrics, field), "_labelnames", ()))
        assert not FORBIDDEN_LABELS & labelnames, field


def _metric_fields() -> list[str]:
    return [name for name in Metrics.__dataclass_fields__ if name != "registry"]


def _field_docstrings() -> dict[str, str]:
    """The string literal after each field of ``Metrics`` (attribute docstrings)."""
    tree = ast.parse(inspect.getsource(catalogue))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Metrics"]
    docs: dict[str, str] = {}
    for field, after in zip(cls.body, [*cls.body[1:], None], strict=True):
        if not (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)):
            continue
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[field.target.id] = str(after.value.value)
    return docs


def test_every_field_documents_its_metric_and_label_sets() -> None:
    metrics = _catalogue()
    docs = _field_docstrings()
    for field in _metric_fields():
        doc = docs.get(field, "")
        assert doc, f"Metrics.{field} has no docstring"
        (family,) = getattr(metrics, field).collect()
        name = exposed_name(family)
        labels = list(getattr(getattr(metrics, field), "_labelnames", ()))
        if family.type == "info":
            labels = ["version"]
        signature = f"``{name}{{{','.join(labels)}}}``" if labels else f"``{name}``"
        assert signature in doc, f"Metrics.{field}: docstring does not name {signature}"
        for label in labels:
            # each label's closed set is written out after its name
            assert label in doc.split(signature, 1)[1] or len(labels) == 1, (field, label)


def test_values_from_outside_are_clamped_to_closed_sets() -> None:
    metrics = _catalogue()
    metrics.api_requests.labels("/status", "PROPFIND", "200").inc()
    metrics.api_requests.labels(route="/status", method="GET", code="9999").inc()
    metrics.watch_events.labels("SOMETHING_NEW").inc()
    metrics.remote_requests.labels("brew", "pods/" + "x" * 40, "200").inc()
    text = generate_latest(metrics.registry).decode()
    assert 'sidecar_api_requests_total{code="200",method="other",route="/status"} 1.0' in text
    assert 'sidecar_api_requests_total{code="other",method="GET",route="/status"} 1.0' in text
    assert 'sidecar_watch_events_total{type="other"} 1.0' in text
    assert 'sidecar_remote_requests_total{code="200",resource="other",verb="other"} 1.0' in text
    assert "PROPFIND" not in text and "SOMETHING_NEW" not in text and "x" * 40 not in text


def test_small_label_sets_start_at_zero_and_every_phase_is_exported() -> None:
    text = generate_latest(_catalogue().registry).decode()
    for outcome in catalogue.CREATE_OUTCOMES:
        assert f'sidecar_offload_creates_total{{outcome="{outcome}"}} 0.0' in text
    for outcome in catalogue.DELETE_OUTCOMES:
        assert f'sidecar_offload_deletes_total{{outcome="{outcome}"}} 0.0' in text
    for kind in catalogue.ORPHAN_KINDS:
        assert f'sidecar_janitor_orphans_reaped_total{{kind="{kind}"}} 0.0' in text
    for phase in catalogue.POD_PHASES:
        value = "1.0" if phase == "Running" else "0.0"
        assert f'sidecar_remote_pods{{phase="{phase}"}} {value}' in text


def test_a_phase_the_collector_does_not_know_is_counted_as_unknown() -> None:
    metrics = make_metrics(CollectorRegistry(), version="test")
    register_phase_collector(metrics.registry, lambda: {"Running": 2, "Evicted?": 3})
    get = metrics.registry.get_sample_value
    assert get("sidecar_remote_pods", {"phase": "Unknown"}) == 3
    assert get("sidecar_remote_pods", {"phase": "Running"}) == 2


# --- the Grafana dashboard ----------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [
        target["expr"]
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets") or []
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_the_dashboard_queries_only_metrics_of_the_catalogue() -> None:
    dashboard = _dashboard()
    known = exposed_sample_names(_catalogue())
    used: set[str] = set()
    for expr in _expressions(dashboard):
        names = set(re.findall(r"\bsidecar_[a-z0-9_]+", expr))
        assert names, f"no sidecar metric in {expr!r}"
        assert names <= known, f"{sorted(names - known)} not in the catalogue ({expr!r})"
        used |= names
    # the key metrics of the issue are on it
    for name in (
        "sidecar_api_requests_total",
        "sidecar_api_request_duration_seconds_bucket",
        "sidecar_remote_requests_total",
        "sidecar_remote_pods",
        "sidecar_status_cache_age_seconds",
        "sidecar_status_propagation_delay_seconds_bucket",
        "sidecar_offload_creates_total",
        "sidecar_offload_deletes_total",
        "sidecar_janitor_pending_deletes",
        "sidecar_janitor_orphans_reaped_total",
        "sidecar_tunnel_tunnels",
        "sidecar_tunnel_bytes_total",
        "sidecar_tunnel_gateway_connected",
    ):
        assert name in used, name


def test_the_dashboard_uses_a_prometheus_datasource_variable() -> None:
    dashboard = _dashboard()
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert "[$__rate_interval]" in target["expr"] or "rate(" not in target["expr"]
        assert panel["title"] and panel["gridPos"]["w"] <= 24


@pytest.mark.parametrize("field", _metric_fields())
def test_every_field_is_a_registered_metric(field: str) -> None:
    metrics = _catalogue()
    (family,) = getattr(metrics, field).collect()
    assert family.name in {f.name for f in _families(metrics)}
