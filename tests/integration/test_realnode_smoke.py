"""Smoke: a pod on the real node really runs (direct, without the sidecar)."""

from __future__ import annotations

import time

import pytest

from tests.deadlines import scaled
from tests.localcluster import LocalCluster
from tests.localcluster.realnode import BUSYBOX_IMAGE, NODE_LABEL, RealNode, toleration

pytestmark = [pytest.mark.controlplane, pytest.mark.realnode]


def test_a_container_on_the_real_node_runs_and_its_exit_code_and_output_are_real(
    control_plane: LocalCluster, real_node: RealNode
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "real-smoke"},
        "spec": {
            "nodeSelector": {NODE_LABEL[0]: NODE_LABEL[1]},
            "tolerations": [toleration()],
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "echo hello from $(hostname); exit 3"],
                }
            ],
        },
    }
    control_plane.request("POST", "/api/v1/namespaces/default/pods", pod)
    deadline = time.monotonic() + scaled(60)
    while True:
        status = control_plane.request("GET", "/api/v1/namespaces/default/pods/real-smoke")[
            "status"
        ]
        if status.get("phase") in ("Succeeded", "Failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # polling a condition with a deadline
    assert status["phase"] == "Failed"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert status["podIP"].startswith("10.213.")
    log = control_plane.request("GET", "/api/v1/namespaces/default/pods/real-smoke/log")
    assert log == "hello from real-smoke\n"
