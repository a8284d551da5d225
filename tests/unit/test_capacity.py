"""Ping resources: summed from usable nodes, never a "0" that would drain the node."""

from __future__ import annotations

from typing import Any

from sidecar.remote.capacity import parse_quantity, ping_resources


def node(
    name: str, allocatable: dict[str, str], *, ready: bool = True, cordoned: bool = False
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"unschedulable": cordoned},
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
