"""Property: any pod interLink could send either translates into objects the Kubernetes
schema accepts, or is refused with a 422 that names a field. Nothing else happens."""

from __future__ import annotations

import re
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.api import wire
from sidecar.offload.translate import build_plan
from sidecar.offload.validation import validate_objects
from sidecar.settings import load
from tests import podshapes

SETTINGS = load(
    None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", "OFFLOADING_NAMESPACE_PREFIX": "offloading"}
)
SCHEMA = "1.35.0"
FIELD_MESSAGE = re.compile(
    r"^(pod|body|container\[\d+\]|ConfigMap \S+|Secret \S+|PersistentVolumeClaim \S+)"
    r"(\.|\[|:)"
)

labels = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=20)
texts = st.text(max_size=40)
anything = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), texts, st.lists(texts, max_size=3)
)
quantities = st.one_of(st.sampled_from(["100m", "1", "2Gi", "64Mi", "0.5"]), texts)


@st.composite
def containers(draw: st.DrawFn, name: str, volume_names: list[str]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": draw(st.one_of(labels, anything))}
    if draw(st.booleans()):
        container["args"] = draw(st.lists(texts, max_size=3))
    if draw(st.booleans()):
        container["env"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.one_of(labels, texts), "value": st.one_of(texts, anything)}
                ),
                max_size=3,
            )
        )
    if draw(st.booleans()):
        container["ports"] = [{"containerPort": draw(anything)}]
    if draw(st.booleans()):
        container["resources"] = {"limits": {"cpu": draw(quantities)}}
    if volume_names and draw(st.booleans()):
        container["volumeMounts"] = [
            {"name": v, "mountPath": f"/m/{i}"} for i, v in enumerate(volume_names)
        ]
    if draw(st.booleans()):
        container[draw(st.sampled_from(["workingDir", "bogusField", "stdin", "tty"]))] = draw(
            anything
        )
    return container


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    uid = draw(st.uuids()).hex
    volumes = []
    for index in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["emptyDir", "hostPath", "configMap", "secret", "projected"]))
        source = {
            "emptyDir": {},
            "hostPath": {"path": "/x"},
            "configMap": {"name": "cm"},
            "secret": {"secretName": "sec"},
            "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
        }[kind]
        volumes.append({"name": f"v{index}", kind: source})
    names = draw(st.lists(labels, min_size=1, max_size=3, unique=True))
    spec: dict[str, Any] = {
        "containers": [draw(containers(n, [v["name"] for v in volumes])) for n in names]
    }
    if volumes:
        spec["volumes"] = volumes
    if draw(st.booleans()):
        spec["restartPolicy"] = draw(st.one_of(st.sampled_from(["Always", "Never"]), texts))
    pod = podshapes.pod(uid, draw(labels), spec)
    sent = {
        "configMaps": [podshapes.config_map("cm", {"k": draw(texts)})],
        "secrets": [podshapes.secret("sec", {"k": draw(texts)})],
        "projectedvolumemaps": [
            {"metadata": {"name": v["name"]}, "data": {"token": "t"}}
            for v in volumes
            if "projected" in v
        ],
    }
    return podshapes.body(pod, {n: sent for n in names})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_pods_translate_to_valid_objects_or_a_named_422(body: dict[str, Any]) -> None:
    try:
        request = wire.parse_create(body)
        plan = build_plan(request, offloading=SETTINGS.offloading, mesh_settings=SETTINGS.mesh)
        validate_objects(plan.objects(), SCHEMA)
    except wire.WireError as exc:
        refusal: wire.WireError | None = exc
    else:
        refusal = None
    if refusal is not None:
        assert refusal.status == 422
        assert FIELD_MESSAGE.match(refusal.message), refusal.message
