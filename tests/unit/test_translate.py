"""The first translation: documented rewrites only, and a valid Pod for the API schema."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from sidecar.api.wire import PodRef
from sidecar.offload import naming, translate

UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
SCHEMA_VERSION = "1.35.0"


def local_pod() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "hello-world-1",
            "namespace": "default",
            "uid": UID,
            "resourceVersion": "42",
            "creationTimestamp": "2026-11-21T10:00:00Z",
            "labels": {"app": "x"},
            "annotations": {"interlink.eu/pod-ip": "10.10.0.2"},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["/bin/sh", "-c"],
                    "args": ['echo \'quoted "json": {"a": 1}\'\nline two'],
                    "resources": {"limits": {"cpu": "500m", "nvidia.com/gpu": "1"}},
                    "workingDir": "/work",
                    "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5},
                    "volumeMounts": [
                        {"name": "scratch", "mountPath": "/scratch"},
                        {
                            "name": "kube-api-access-x7k2p",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": True,
                        },
                    ],
                }
            ],
            "volumes": [
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "kube-api-access-x7k2p", "projected": {"sources": []}},
            ],
            "nodeName": "virtual-kubelet",
            "serviceAccountName": "default",
            "restartPolicy": "Never",
            "runtimeClassName": "nvidia",
            "imagePullSecrets": [{"name": "regcred"}],
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [
                {
                    "key": "virtual-node.interlink/no-schedule",
                    "operator": "Exists",
                    "effect": "NoSchedule",
                },
                {"key": "user", "operator": "Exists"},
            ],
        },
        "status": {"phase": "Pending", "podIP": "127.0.0.1"},
    }


def translate_default(pod: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    ref = PodRef(uid=UID, name="hello-world-1", namespace="default")
    kwargs: dict[str, Any] = {
        "namespace": "offloading-default",
        "node_selector": {},
        "node_tolerations": (),
    } | overrides
    return translate.remote_pod(pod, ref, **kwargs)


def test_documented_rewrites_and_nothing_else() -> None:
    pod = local_pod()
    remote = translate_default(pod)
    assert remote["metadata"]["name"] == naming.scoped_name("hello-world-1", UID)
    assert remote["metadata"]["namespace"] == "offloading-default"
    assert remote["metadata"]["labels"] == {"app": "x", **naming.ownership_labels(UID)}
    assert remote["metadata"]["annotations"]["interlink.eu/pod-ip"] == "10.10.0.2"
    assert remote["metadata"]["annotations"]["interlink.io/source.uid"] == UID
    for gone in ("uid", "resourceVersion", "creationTimestamp"):
        assert gone not in remote["metadata"]
    spec = remote["spec"]
    assert "nodeName" not in spec and "status" not in remote
    assert "serviceAccountName" not in spec
    assert spec["automountServiceAccountToken"] is False
    assert spec["tolerations"] == [{"key": "user", "operator": "Exists"}]
    container = spec["containers"][0]
    original = pod["spec"]["containers"][0]
    for key in ("command", "args", "resources", "workingDir", "readinessProbe", "image"):
        assert container[key] == original[key]
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert spec["volumes"] == [pod["spec"]["volumes"][0]]
    for key in ("runtimeClassName", "imagePullSecrets", "restartPolicy"):
        assert spec[key] == pod["spec"][key]


def test_input_is_not_modified() -> None:
    pod = local_pod()
    before = copy.deepcopy(pod)
    translate_default(pod)
    assert pod == before


def test_config_selector_and_tolerations_are_merged_not_replaced() -> None:
    remote = translate_default(
        local_pod(),
        node_selector={"gpu": "t4"},
        node_tolerations=({"key": "nvidia.com/gpu", "operator": "Exists"},),
    )
    assert remote["spec"]["nodeSelector"] == {"disk": "ssd", "gpu": "t4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists"} in remote["spec"]["tolerations"]
    assert {"key": "user", "operator": "Exists"} in remote["spec"]["tolerations"]


def test_translated_pod_is_valid_for_the_api_schema() -> None:
    remote = translate_default(local_pod(), node_selector={"gpu": "t4"})
    kubernetes_validate.validate(remote, SCHEMA_VERSION, strict=True)


def test_schema_validation_catches_a_broken_pod() -> None:
    remote = translate_default(local_pod())
    remote["spec"]["containers"][0]["image"] = 42
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(remote, SCHEMA_VERSION, strict=True)
