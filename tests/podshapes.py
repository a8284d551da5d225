"""Pod shapes as the virtual kubelet sends them (``RetrievedPodData``), for unit and
integration tests. Each builder takes the pod uid and returns the request body."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

Body = dict[str, Any]
VIRTUAL_NODE = "virtual-kubelet"
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\nline2==\n-----END CERTIFICATE-----\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def container(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", "command": ["sleep", "3600"], **extra}


def pod(
    uid: str,
    name: str,
    spec: dict[str, Any],
    *,
    annotations: dict[str, str] | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    base_spec: dict[str, Any] = {
        "nodeName": VIRTUAL_NODE,
        "restartPolicy": "Never",
        "serviceAccountName": "default",
        "tolerations": [
            {
                "key": "virtual-node.interlink/no-schedule",
                "operator": "Exists",
                "effect": "NoSchedule",
            }
        ],
    }
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "labels": {"app": name},
            "annotations": annotations or {},
        },
        "spec": base_spec | spec,
        "status": {"phase": "Pending", "podIP": "127.0.0.1", "hostIP": "127.0.0.1"},
    }


def body(the_pod: dict[str, Any], per_container: dict[str, dict[str, Any]] | None = None) -> Body:
    """RetrievedPodData: one entry per init container, then per container, in order."""
    names = [c["name"] for c in the_pod["spec"].get("initContainers") or []]
    names += [c["name"] for c in the_pod["spec"]["containers"]]
    entries = []
    for name in names:
        entry = {
            "name": name,
            "configMaps": None,
            "secrets": None,
            "emptyDirs": None,
            "projectedvolumemaps": None,
        }
        entry |= (per_container or {}).get(name, {})
        entries.append(entry)
    return {"pod": the_pod, "container": entries, "jobConfig": {}}


def config_map(name: str, data: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"cm-{name}"},
        "data": data,
        **extra,
    }


def secret(name: str, data: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"secret-{name}"},
        "data": {k: b64(v) for k, v in data.items()},
        "type": "Opaque",
        **extra,
    }


def kube_api_access(name: str = "kube-api-access-x7k2p") -> tuple[dict[str, Any], dict[str, Any]]:
    """The automatic projected volume and the map interLink sends for it."""
    volume = {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }
    data = {
        "metadata": {"name": name, "creationTimestamp": None},
        "data": {
            "token": "eyJhbGciOiJSUzI1NiJ9.payload.signature",
            "ca.crt": CA_PEM,
            "namespace": "default",
        },
    }
    return volume, data


# --- the shapes ------------------------------------------------------------------------


def multi_container(uid: str) -> Body:
    return body(
        pod(
            uid,
            "multi",
            {
                "containers": [
                    container("web", ports=[{"containerPort": 8080, "protocol": "TCP"}]),
                    container("worker"),
                    container("logger"),
                ]
            },
        )
    )


def init_and_native_sidecar(uid: str) -> Body:
    return body(
        pod(
            uid,
            "inits",
            {
                "initContainers": [
                    container("setup", command=["sh", "-c", "echo setup"]),
                    container("proxy", restartPolicy="Always"),
                ],
                "containers": [container("main")],
            },
        )
    )


def shared_volumes(uid: str) -> Body:
    api_volume, api_data = kube_api_access()
    labels_volume = {
        "name": "podinfo",
        "projected": {
            "sources": [
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {
                                "path": "deep/name",
                                "fieldRef": {"fieldPath": "metadata.name"},
                                "mode": 0o400,
                            },
                        ]
                    }
                }
            ]
        },
    }
    labels_data = {
        "metadata": {"name": "podinfo"},
        "data": {"labels": 'app="shared"\n', "deep/name": "shared"},
    }
    cm = config_map(
        "app-config",
        {"app.yaml": "a: 1\nb: [x, y]\n", "empty": ""},
        binaryData={"blob": b64("\x00\x01binary")},
    )
    sec = secret("app-secret", {"password": "p@ss\nword", "json": '{"k": "v"}'})
    mounts = [
        {"name": "config", "mountPath": "/etc/config"},
        {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": api_volume["name"], "mountPath": SA_MOUNT, "readOnly": True},
        {"name": "podinfo", "mountPath": "/etc/podinfo"},
    ]
    the_pod = pod(
        uid,
        "shared",
        {
            "initContainers": [container("prepare", volumeMounts=mounts[:3])],
            "containers": [
                container("a", volumeMounts=mounts),
                container("b", volumeMounts=mounts),
            ],
            "volumes": [
                {
                    "name": "config",
                    "configMap": {
                        "name": "app-config",
                        "defaultMode": 0o644,
                        "items": [
                            {"key": "app.yaml", "path": "app.yaml"},
                            {"key": "blob", "path": "bin/blob", "mode": 0o600},
                        ],
                    },
                },
                {
                    "name": "creds",
                    "secret": {"secretName": "app-secret", "defaultMode": 0o400, "optional": False},
                },
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                api_volume,
                labels_volume,
            ],
        },
    )
    sent = {"configMaps": [cm], "secrets": [sec], "projectedvolumemaps": [api_data, labels_data]}
    prepare = {"configMaps": [cm], "secrets": [sec]}
    return body(the_pod, {"prepare": prepare, "a": sent, "b": sent})


def env_refs(uid: str) -> Body:
    cm = config_map("env-config", {"MODE": "fast", "LEVEL": "3"})
    sec = secret("env-secret", {"TOKEN": "t0k3n"})
    the_pod = pod(
        uid,
        "envs",
        {
            "containers": [
                container(
                    "main",
                    env=[
                        {"name": "PLAIN", "value": "x"},
                        {
                            "name": "MODE",
                            "valueFrom": {"configMapKeyRef": {"name": "env-config", "key": "MODE"}},
                        },
                        {
                            "name": "TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "TOKEN"}},
                        },
                        {
                            "name": "MISSING_OK",
                            "valueFrom": {
                                "configMapKeyRef": {
                                    "name": "not-sent",
                                    "key": "k",
                                    "optional": True,
                                }
                            },
                        },
                        {
                            "name": "MY_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    envFrom=[
                        {"configMapRef": {"name": "env-config"}, "prefix": "CFG_"},
                        {"secretRef": {"name": "env-secret"}},
                    ],
                    volumeMounts=[
                        {"name": "cfg", "mountPath": "/cfg"},
                        {"name": "sec", "mountPath": "/sec"},
                    ],
                )
            ],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "env-config"}},
                {"name": "sec", "secret": {"secretName": "env-secret"}},
            ],
        },
    )
    return body(the_pod, {"main": {"configMaps": [cm], "secrets": [sec]}})


def probes_and_hooks(uid: str) -> Body:
    return body(
        pod(
            uid,
            "probes",
            {
                "containers": [
                    container(
                        "web",
                        ports=[{"containerPort": 8080}],
                        startupProbe={
                            "httpGet": {"path": "/healthz", "port": 8080},
                            "failureThreshold": 30,
                            "periodSeconds": 2,
                        },
                        livenessProbe={"tcpSocket": {"port": 8080}, "initialDelaySeconds": 5},
                        readinessProbe={
                            "exec": {"command": ["cat", "/tmp/ready"]},
                            "periodSeconds": 3,
                        },
                        lifecycle={
                            "postStart": {"exec": {"command": ["touch", "/tmp/started"]}},
                            "preStop": {"exec": {"command": ["sh", "-c", "sleep 1"]}},
                        },
                        terminationMessagePolicy="FallbackToLogsOnError",
                    )
                ]
            },
        )
    )


def security_context(uid: str) -> Body:
    return body(
        pod(
            uid,
            "secure",
            {
                "securityContext": {
                    "runAsUser": 1000,
                    "runAsGroup": 3000,
                    "fsGroup": 2000,
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "imagePullSecrets": [{"name": "regcred"}],
                "hostname": "secure-host",
                "containers": [
                    container(
                        "main",
                        securityContext={
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                        },
                        workingDir="/work",
                        imagePullPolicy="IfNotPresent",
                    )
                ],
            },
        )
    )


def resources(uid: str) -> Body:
    return body(
        pod(
            uid,
            "resources",
            {
                "containers": [
                    container(
                        "main",
                        resources={
                            "requests": {
                                "cpu": "250m",
                                "memory": "64Mi",
                                "ephemeral-storage": "1Gi",
                            },
                            "limits": {"cpu": "1", "memory": "128Mi"},
                        },
                    )
                ]
            },
        )
    )


def tricky_args(uid: str) -> Body:
    args = [
        "echo 'single' \"double\" `back` $HOME \\ back\\slash",
        "line one\nline two\n\ttabbed",
        json.dumps({"nested": {"list": [1, 2, "three"], "quote": '"q"'}}),
    ]
    return body(
        pod(
            uid,
            "args",
            {
                "containers": [
                    container(
                        "main",
                        command=["/bin/sh", "-c"],
                        args=args,
                        env=[
                            {"name": "JSON", "value": '{"a": "b", "c": [1, 2]}'},
                            {"name": "QUOTES", "value": 'it\'s "quoted"'},
                        ],
                    )
                ]
            },
        )
    )


def pvcs(uid: str, *, suffix: str = "") -> Body:
    claims = {"data-delete" + suffix: "delete", "data-retain" + suffix: "retain"}
    pvc_objects = [
        {
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": f"pvc-{name}",
                "annotations": {"interlink.io/pvc-retention-policy": policy},
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "volumeName": "pv-local-123",
                "storageClassName": "local-only",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        for name, policy in claims.items()
    ]
    the_pod = pod(
        uid,
        "pvc" + suffix,
        {
            "containers": [
                container(
                    "main", volumeMounts=[{"name": n, "mountPath": f"/data/{n}"} for n in claims]
                )
            ],
            "volumes": [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in claims],
        },
        annotations={"interlink.io/remote-pvc": ", ".join(claims)},
    )
    return body(the_pod, {"main": {"persistentVolumeClaims": pvc_objects}})


SHAPES: dict[str, Callable[[str], Body]] = {
    "multi-container": multi_container,
    "init-and-native-sidecar": init_and_native_sidecar,
    "shared-volumes": shared_volumes,
    "env-refs": env_refs,
    "probes-and-hooks": probes_and_hooks,
    "security-context": security_context,
    "resources": resources,
    "tricky-args": tricky_args,
    "pvcs": pvcs,
}


def many_config_maps(uid: str, *, count: int) -> Body:
    """A pod mounting ``count`` ConfigMaps: a create that takes a while."""
    cms = [config_map(f"part-{i}", {"index": str(i)}) for i in range(count)]
    the_pod = pod(
        uid,
        f"many-{uid[:8]}",
        {
            "containers": [
                container(
                    "main",
                    volumeMounts=[
                        {"name": f"v{i}", "mountPath": f"/parts/{i}"} for i in range(count)
                    ],
                )
            ],
            "volumes": [
                {"name": f"v{i}", "configMap": {"name": f"part-{i}"}} for i in range(count)
            ],
        },
    )
    return body(the_pod, {"main": {"configMaps": cms}})
