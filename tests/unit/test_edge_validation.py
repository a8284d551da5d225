"""Issue 11, finding 3: wrong types nested in a pod, JSON nested 1,000 deep, a far-future
``SinceTime``, identifiers the remote API server refuses. Each was a 500 with a traceback
(TypeError, AttributeError, RecursionError, OverflowError) or a 502; each must be a 4xx
naming the field, raised before anything is journalled or sent."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from sidecar.api import wire
from sidecar.core.shape import WireError
from sidecar.offload.translate import build_plan
from sidecar.offload.validation import validate_objects
from sidecar.settings import load
from sidecar.status import mapping
from tests import podshapes

UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
SETTINGS = load(
    None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", "OFFLOADING_NAMESPACE_PREFIX": "offloading"}
)
SECRET_VALUE = "s3cr3t-value-never-echoed"


def base_body() -> dict[str, Any]:
    """A valid pod touching every translated part: env and envFrom references, copied
    ConfigMap/Secret volumes, projected data, tolerations, node selector and affinity."""
    api_volume, api_data = podshapes.kube_api_access()
    cm = podshapes.config_map("cfg", {"a": "b"})
    sec = podshapes.secret("sec", {"p": SECRET_VALUE})
    main = podshapes.container(
        "main",
        env=[
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        envFrom=[{"secretRef": {"name": "sec"}}],
        volumeMounts=[
            {"name": "cfg", "mountPath": "/c"},
            {"name": "sec", "mountPath": "/s"},
            {"name": api_volume["name"], "mountPath": podshapes.SA_MOUNT},
        ],
    )
    term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    the_pod = podshapes.pod(
        UID,
        "edge",
        {
            "containers": [main],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec"}},
                api_volume,
                {"name": "scratch", "emptyDir": {}},
            ],
            "nodeSelector": {"disk": "ssd"},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "preference": term}
                    ],
                }
            },
        },
        annotations={"team": "a"},
    )
    sent = {"configMaps": [cm], "secrets": [sec], "projectedvolumemaps": [api_data]}
    return podshapes.body(the_pod, {"main": sent})


def mutated(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(base_body())
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


def plan(body: Any) -> Any:
    return build_plan(
        wire.parse_create(body), offloading=SETTINGS.offloading, mesh_settings=SETTINGS.mesh
    )


def test_the_base_body_translates_and_validates() -> None:
    validate_objects(plan(base_body()).objects(), "1.35.0")


C0 = ("pod", "spec", "containers", 0)
VOLUMES = ("pod", "spec", "volumes")
AFFINITY = ("pod", "spec", "affinity", "nodeAffinity")
REQUIRED = (*AFFINITY, "requiredDuringSchedulingIgnoredDuringExecution")

# (where the wrong value goes, the value, the JSON path the 422 must name)
WRONG_TYPES: list[tuple[tuple[str | int, ...], Any, str]] = [
    # env entries (env.py)
    ((*C0, "env"), "A=b", "pod.spec.containers[0].env: expected a list, got a string"),
    ((*C0, "env"), [5], "pod.spec.containers[0].env[0]: expected an object, got a number"),
    ((*C0, "env", 0, "valueFrom"), "cfg", "pod.spec.containers[0].env[0].valueFrom: expected"),
    (
        (*C0, "env", 0, "valueFrom", "configMapKeyRef"),
        ["cfg"],
        "pod.spec.containers[0].env[0].valueFrom.configMapKeyRef: expected an object",
    ),
    (
        (*C0, "env", 0, "valueFrom", "configMapKeyRef", "name"),
        ["cfg"],
        "pod.spec.containers[0].env[0].valueFrom.configMapKeyRef.name: expected a string",
    ),
    (
        (*C0, "env", 1, "valueFrom", "fieldRef", "fieldPath"),
        ["metadata.name"],
        "pod.spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: expected a string",
    ),
    ((*C0, "envFrom"), [7], "pod.spec.containers[0].envFrom[0]: expected an object"),
    (("pod", "spec", "initContainers"), "x", "pod.spec.initContainers: expected a list"),
    (("pod", "spec", "initContainers"), [3], "pod.spec.initContainers[0]: expected an object"),
    # tolerations, node selector, affinity (scheduling.py)
    (("pod", "spec", "tolerations"), "NoSchedule", "pod.spec.tolerations: expected a list"),
    (("pod", "spec", "tolerations"), [1], "pod.spec.tolerations[0]: expected an object"),
    (("pod", "spec", "tolerations", 0, "key"), [1], "pod.spec.tolerations[0].key: expected"),
    (("pod", "spec", "nodeSelector"), ["disk"], "pod.spec.nodeSelector: expected an object"),
    (("pod", "spec", "nodeSelector", "disk"), ["ssd"], "pod.spec.nodeSelector.disk: expected"),
    (("pod", "spec", "nodeName"), ["vk"], "pod.spec.nodeName: expected a string"),
    (("pod", "spec", "affinity"), "near", "pod.spec.affinity: expected an object"),
    (
        (*REQUIRED, "nodeSelectorTerms"),
        "zone",
        "pod.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms: expected a list",
    ),
    (
        (*REQUIRED, "nodeSelectorTerms", 0, "matchExpressions", 0, "values"),
        5,
        ".nodeSelectorTerms[0].matchExpressions[0].values: expected a list, got a number",
    ),
    (
        (*AFFINITY, "preferredDuringSchedulingIgnoredDuringExecution", 0),
        "x",
        "preferredDuringSchedulingIgnoredDuringExecution[0]: expected an object",
    ),
    # volumes and mounts (volumes.py)
    (VOLUMES, "cfg", "pod.spec.volumes: expected a list, got a string"),
    (VOLUMES, [5], "pod.spec.volumes[0]: expected an object, got a number"),
    ((*VOLUMES, 0, "name"), ["cfg"], "pod.spec.volumes[0].name: expected a string"),
    ((*VOLUMES, 0, "configMap"), "cfg", "pod.spec.volumes[0].configMap: expected an object"),
    ((*VOLUMES, 0, "configMap", "name"), 5, "pod.spec.volumes[0].configMap.name: expected"),
    (
        (*VOLUMES, 1, "secret"),
        {"secretName": "not-sent", "optional": "yes"},
        "pod.spec.volumes[1].secret.optional: expected true or false, got a string",
    ),
    ((*VOLUMES, 2, "projected", "sources"), "x", "pod.spec.volumes[2].projected.sources: expected"),
    (
        (*VOLUMES, 2, "projected", "sources", 1, "configMap", "items", 0, "mode"),
        "0644",
        "pod.spec.volumes[2].projected.sources[1].configMap.items[0].mode: expected an integer",
    ),
    (
        (*VOLUMES, 3),
        {"name": "data", "persistentVolumeClaim": {"claimName": ["data"]}},
        "pod.spec.volumes[3].persistentVolumeClaim.claimName: expected a string",
    ),
    ((*C0, "volumeMounts"), "cfg", "pod.spec.containers[0].volumeMounts: expected a list"),
    ((*C0, "volumeMounts", 0), "cfg", "pod.spec.containers[0].volumeMounts[0]: expected an"),
    ((*C0, "volumeMounts", 0, "name"), {}, "pod.spec.containers[0].volumeMounts[0].name: exp"),
    # what interLink sends per container (volumes.py)
    (("container", 0, "configMaps"), "cfg", "container[0].configMaps: expected a list"),
    (("container", 0, "configMaps"), 12, "container[0].configMaps: expected a list, got a num"),
    (("container", 0, "configMaps", 0), "cfg", "container[0].configMaps[0]: expected an object"),
    (("container", 0, "secrets", 0, "metadata"), "sec", "container[0].secrets[0].metadata: exp"),
    (
        ("container", 0, "secrets", 0, "metadata", "name"),
        5,
        "container[0].secrets[0].metadata.name: expected a string",
    ),
    (("container", 0, "secrets", 0, "type"), ["Opaque"], "container[0].secrets[0].type: expected"),
    (
        ("container", 0, "secrets", 0, "data", "p"),
        [SECRET_VALUE],
        "container[0].secrets[0].data.p: expected a string, got a list",
    ),
    (
        ("container", 0, "projectedvolumemaps", 0, "data"),
        [SECRET_VALUE],
        "container[0].projectedvolumemaps[0].data: expected an object",
    ),
    (("container",), "main", "container: expected a list"),
    (("container",), [5], "container[0]: expected an object"),
    # labels and annotations that are not objects (translate.py)
    (("pod", "metadata", "labels"), "app=edge", "pod.metadata.labels: expected an object"),
    (("pod", "metadata", "labels", "app"), 5, "pod.metadata.labels.app: expected a string"),
    (("pod", "metadata", "annotations"), [["a", "b"]], "pod.metadata.annotations: expected an"),
    (
        ("pod", "metadata", "annotations", "interlink.io/remote-pvc"),
        ["data"],
        'pod.metadata.annotations["interlink.io/remote-pvc"]: expected a string',
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), WRONG_TYPES, ids=[m for _, _, m in WRONG_TYPES]
)
def test_a_wrong_type_in_a_pod_is_a_422_naming_its_path(
    path: tuple[str | int, ...], value: Any, message: str
) -> None:
    with pytest.raises(WireError) as caught:
        plan(mutated(path, value))
    assert caught.value.status == 422
    assert message in caught.value.message
    assert SECRET_VALUE not in caught.value.message
    assert "\n" not in caught.value.message


def test_null_is_an_empty_value_as_in_go() -> None:
    """Go serialises nil slices and maps as null: they are not wrong types."""
    body = base_body()
    body["pod"]["spec"].update(initContainers=None, tolerations=None, nodeSelector=None)
    body["pod"]["metadata"]["labels"] = None
    body["container"][0]["emptyDirs"] = None
    # The mesh container is appended to initContainers (a native sidecar by default).
    body["pod"]["metadata"]["annotations"]["slurm-job.vk.io/pre-exec"] = (
        "cat <<'EOFMESH' > $TMPDIR/mesh.sh\necho mesh\nEOFMESH"
    )
    result = plan(body)
    names = [c["name"] for c in result.pod["spec"]["initContainers"]]
    assert names == ["mesh-setup"]
    validate_objects(result.objects(), "1.35.0")


# --- /status: the local pod interLink sends (status/mapping.py) -------------------------

STATUS_WRONG_TYPES: list[tuple[tuple[str | int, ...], Any, str]] = [
    (("metadata", "annotations"), "x", "[0].metadata.annotations: expected an object"),
    (
        ("metadata", "annotations", "interlink.eu/disable-offload-containers"),
        ["main"],
        '[0].metadata.annotations["interlink.eu/disable-offload-containers"]: expected a string',
    ),
    (("spec",), "x", "[0].spec: expected an object, got a string"),
    (("spec", "containers"), "main", "[0].spec.containers: expected a list"),
    (("spec", "containers"), [4], "[0].spec.containers[0]: expected an object"),
    (("spec", "containers", 0, "name"), ["main"], "[0].spec.containers[0].name: expected a str"),
    (("spec", "initContainers"), 3, "[0].spec.initContainers: expected a list, got a number"),
    (("spec", "restartPolicy"), ["Never"], "[0].spec.restartPolicy: expected a string"),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), STATUS_WRONG_TYPES, ids=[m for _, _, m in STATUS_WRONG_TYPES]
)
def test_a_wrong_type_in_a_status_pod_is_a_422_naming_its_path(
    path: tuple[str | int, ...], value: Any, message: str
) -> None:
    local = mutated(("pod", *path), value)["pod"]
    [pod] = wire.parse_pod_list([local])
    ref = wire.pod_ref(pod, "[0]")
    for remote in (None, {"metadata": {"uid": "r"}, "status": {"phase": "Running"}}):
        with pytest.raises(WireError) as caught:
            mapping.pod_status(pod, ref, remote, remote_location="namespace x", where="[0]")
        assert caught.value.status == 422
        assert message in caught.value.message
    with pytest.raises(WireError):
        mapping.check_local(pod, "[0]")


# --- bodies: depth, JSON that is not JSON -------------------------------------------


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_deep_nesting_is_a_400_naming_the_limit(depth: int) -> None:
    for open_, close in ((b"[", b"]"), (b'{"a":', b"}")):
        raw = open_ * depth + b"1" + close * depth
        with pytest.raises(WireError) as caught:
            wire.decode_json(raw)
        assert caught.value.status == 400
        assert f"deeper than {wire.MAX_DEPTH} levels" in caught.value.message


def test_nesting_up_to_the_limit_is_accepted() -> None:
    depth = wire.MAX_DEPTH
    assert wire.decode_json(b"[" * depth + b"]" * depth) is not None


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b'{"Tail": Infinity}', b"[-Infinity]", b"[1e999]", b"1" * 5000, b"\xff\xfe{", b"{"],
)
def test_what_is_not_json_is_a_400(raw: bytes) -> None:
    with pytest.raises(WireError) as caught:
        wire.decode_json(raw)
    assert caught.value.status == 400
    assert caught.value.message.startswith("request body is not valid JSON")
    assert len(caught.value.message) < 300


# --- identifiers: Kubernetes' own rules, before anything is journalled ----------------


def pod_with(**meta: Any) -> dict[str, Any]:
    return {"metadata": {"uid": UID, "name": "p", "namespace": "default"} | meta}


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"uid": "not a label value"}, "pod.metadata.uid: "),
        ({"uid": "-starts-with-a-dash"}, "pod.metadata.uid: "),
        ({"uid": "u" * 64}, "pod.metadata.uid: "),
        ({"uid": "x" * 10_000_000}, "pod.metadata.uid: "),
        ({"uid": "é"}, "pod.metadata.uid: "),
        ({"namespace": "."}, "pod.metadata.namespace: "),
        ({"namespace": ".."}, "pod.metadata.namespace: "),
        ({"namespace": "Default"}, "pod.metadata.namespace: "),
        ({"namespace": "n" * 64}, "pod.metadata.namespace: "),
        ({"namespace": "a/b"}, "pod.metadata.namespace: "),
        ({"name": "../x"}, "pod.metadata.name: "),
        ({"name": "UPPER"}, "pod.metadata.name: "),
        ({"name": "n" * 254}, "pod.metadata.name: "),
        ({"name": "a..b"}, "pod.metadata.name: "),
    ],
)
def test_identifiers_follow_kubernetes_rules(meta: dict[str, Any], message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(WireError) as caught:
        wire.pod_ref(pod_with(**meta))
    assert caught.value.status == 422
    assert caught.value.message.startswith(message)
    assert len(caught.value.message) < 400, "a 10 MB uid is never echoed whole"
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "meta",
    [
        {},
        {"uid": "A_b.9"},
        {"uid": "u" * 63},
        {"name": "a.b-c." + "n" * 200},
        {"namespace": "n" * 63},
    ],
)
def test_valid_identifiers_pass(meta: dict[str, Any]) -> None:
    wire.pod_ref(pod_with(**meta))


# --- /getLogs options ----------------------------------------------------------------


def log_body(**opts: Any) -> dict[str, Any]:
    return {
        "Namespace": "default",
        "PodUID": UID,
        "PodName": "p",
        "ContainerName": "main",
        "Opts": opts,
    }


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"Tail": 10**20}, "Opts.Tail: 100000000000000000000 is out of range"),
        ({"Bytes": 2**63}, "Opts.Bytes: "),
        ({"SinceSeconds": 10**12}, "Opts.SinceSeconds: "),
        ({"Tail": 1.5}, "Opts.Tail: expected an integer, got a number"),
        ({"Follow": "yes"}, "Opts.Follow: expected true or false"),
        ({"SinceTime": "9999-12-31T23:59:59-01:00"}, "Opts.SinceTime: "),
        ({"SinceTime": "0002-01-01T00:00:00+23:59"}, None),
        ({"SinceTime": "tomorrow"}, "Opts.SinceTime: not an RFC 3339 time"),
        ({"SinceTime": 5}, "Opts.SinceTime: expected an RFC 3339 string, got a number"),
    ],
)
def test_log_options_are_range_checked(opts: dict[str, Any], message: str | None) -> None:
    if message is None:  # at the calendar's edge but inside it
        assert wire.parse_log_request(log_body(**opts)).options.since_time is not None
        return
    with pytest.raises(WireError) as caught:
        wire.parse_log_request(log_body(**opts))
    assert caught.value.status == 422
    assert caught.value.message.startswith(message)


def test_far_future_since_time_in_utc_is_accepted() -> None:
    options = wire.parse_log_request(log_body(SinceTime="9999-12-31T23:59:59Z")).options
    assert options.since_time is not None
    assert options.since_time.utcoffset() is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("PodUID", "a b"),
        ("Namespace", ".."),
        ("PodName", "A"),
        ("ContainerName", "Main"),
        ("ContainerName", "c" * 64),
    ],
)
def test_log_identifiers_follow_kubernetes_rules(field: str, value: str) -> None:
    with pytest.raises(WireError) as caught:
        wire.parse_log_request(log_body() | {field: value})
    assert caught.value.status == 422
    assert caught.value.message.startswith(f"body.{field}: ")
