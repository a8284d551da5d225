"""The embedded control plane behaves like a real cluster where the sidecar depends on it."""

from __future__ import annotations

import pytest

from tests.localcluster import LocalCluster
from tests.localcluster.binaries import K8S_VERSION
from tests.localcluster.realnode import NODE_NAME

pytestmark = pytest.mark.controlplane


def test_reports_its_real_version(control_plane: LocalCluster) -> None:
    # Schema validation picks the remote server's version: it must not be v0.0.0-master.
    assert control_plane.request("GET", "/version")["gitVersion"] == f"v{K8S_VERSION}"


def test_kwok_nodes_are_ready_and_labelled(control_plane: LocalCluster) -> None:
    nodes = control_plane.request("GET", "/api/v1/nodes")["items"]
    real = [NODE_NAME] if control_plane.real_node is not None else []
    assert sorted(n["metadata"]["name"] for n in nodes) == control_plane.node_names + real
    for node in nodes:
        assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
