"""Pod manifests that reach a virtual node of the chain, as a user writes them.

A virtual node is tainted ``virtual-node.interlink/no-schedule:NoSchedule``; a pod gets
there with the matching toleration and ``nodeSelector: kubernetes.io/hostname: <node>``.
kwok runs no container, so the image and command are never executed: annotations of
the project's kwok stages script what the "container" does (they are copied to the
remote pod): see tests/localcluster/kwok-stages.yaml.
"""

from __future__ import annotations

import uuid
from typing import Any

IMAGE = "busybox:1.36"
EXIT_CODE = "test.interlink.io/exit-code"
RESTART = "test.interlink.io/restart"
TOLERATION = {
    "key": "virtual-node.interlink/no-schedule",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def unique_name(prefix: str) -> str:
    """``prefix`` plus a random suffix: names never repeat between tests or runs."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def container(name: str) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", "sleep 3600"]}


def pod(
    name: str,
    node: str,
    *,
    namespace: str = "default",
    annotations: dict[str, str] | None = None,
    containers: tuple[str, ...] = ("main",),
    init_containers: tuple[str, ...] = (),
    restart_policy: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [TOLERATION],
        "containers": [container(c) for c in containers],
        # kwok never stops a container: don't make every delete wait 30 s for nothing.
        "terminationGracePeriodSeconds": 5,
    }
    if init_containers:
        spec["initContainers"] = [container(c) for c in init_containers]
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"e2e": "chain"}}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
