"""Ping resources: summed from usable nodes, never a "0" that would drain the node."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.remote.capacity import parse_quantity, ping_resources, tolerates


def node(
    name: str,
    allocatable: dict[str, str],
    *,
    ready: bool = True,
    cordoned: bool = False,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"unschedulable": cordoned, "taints": taints or []},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_quantities() -> None:
    assert parse_quantity("500m") == parse_quantity("0.5")
    assert parse_quantity("1Gi") == 2**30
    assert parse_quantity("1e3") == 1000
    assert parse_quantity("lots") is None


def test_sums_ready_schedulable_nodes_and_reports_accelerators() -> None:
    result = ping_resources(
        [
            node("a", {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "2"}),
            node("b", {"cpu": "3500m", "memory": "16Gi", "pods": "110", "hugepages-2Mi": "0"}),
            node("down", {"cpu": "64"}, ready=False),
            node("cordoned", {"cpu": "64"}, cordoned=True),
        ]
    )
    assert result == {
        "cpu": "11500m",
        "memory": "49152Mi",
        "pods": "220",
        "accelerators": [{"resourceType": "nvidia.com/gpu", "available": "2"}],
    }


def test_unknown_or_zero_values_are_left_out_never_zero() -> None:
    assert ping_resources([]) == {}
    assert ping_resources([node("a", {"pods": "10"})]) == {"pods": "10"}
    assert ping_resources([node("a", {"cpu": "0", "nvidia.com/gpu": "0"})]) == {}
    result = ping_resources([node("a", {"cpu": "garbage", "memory": "1Gi"})])
    assert result == {"memory": "1024Mi"}


def test_free_capacity_subtracts_requests_of_pods_on_those_nodes() -> None:
    pods = [
        {
            "spec": {
                "nodeName": "a",
                "containers": [
                    {
                        "resources": {
                            "requests": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}
                        }
                    }
                ],
            }
        },
        {
            "spec": {
                "nodeName": "elsewhere",
                "containers": [{"resources": {"requests": {"cpu": "8"}}}],
            }
        },
    ]
    result = ping_resources(
        [node("a", {"cpu": "4", "memory": "2Gi", "pods": "10", "nvidia.com/gpu": "1"})], pods
    )
    assert result == {"cpu": "2", "memory": "1024Mi", "pods": "9"}


CONTROL_PLANE = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
GPU_ONLY = {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}


def test_a_node_offloaded_pods_cannot_land_on_does_not_count() -> None:
    nodes = [
        node("worker", {"cpu": "8"}),
        node("control-plane", {"cpu": "4"}, taints=[CONTROL_PLANE]),
        node("gpu", {"cpu": "16"}, taints=[GPU_ONLY]),
        node("soft", {"cpu": "2"}, taints=[{"key": "x", "effect": "PreferNoSchedule"}]),
    ]
    assert ping_resources(nodes) == {"cpu": "10"}
    # offloading.node_tolerations: every offloaded pod tolerates them
    tolerate_gpu = [{"key": "dedicated", "operator": "Equal", "value": "gpu"}]
    assert ping_resources(nodes, tolerations=tolerate_gpu) == {"cpu": "26"}
    assert ping_resources(nodes, tolerations=[{"operator": "Exists"}]) == {"cpu": "30"}


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"key": "dedicated", "operator": "Exists"}, GPU_ONLY, True),
        ({"key": "dedicated", "value": "gpu"}, GPU_ONLY, True),
        ({"key": "dedicated", "value": "cpu"}, GPU_ONLY, False),
        ({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, GPU_ONLY, False),
        ({"operator": "Exists"}, CONTROL_PLANE, True),
        (
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
            CONTROL_PLANE,
            True,
        ),
        ({"key": "other", "operator": "Exists"}, CONTROL_PLANE, False),
        ({"key": "node-role.kubernetes.io/control-plane"}, CONTROL_PLANE, True),  # value ""
    ],
)
def test_tolerations_match_taints_as_the_scheduler_does(
    toleration: dict[str, str], taint: dict[str, str], expected: bool
) -> None:
    assert tolerates(toleration, taint) is expected
