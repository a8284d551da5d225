"""Translation: every shape differs from its remote pod only by documented rewrites, copies
hold the same bytes, and the produced objects pass the Kubernetes schema."""

from __future__ import annotations

import base64
import copy
import subprocess
from typing import Any

import kubernetes_validate
import pytest

from sidecar.api import wire
from sidecar.core import naming
from sidecar.offload import mesh
from sidecar.offload.plan import OffloadPlan
from sidecar.offload.rewrites import REWRITES, markdown_table
from sidecar.offload.translate import build_plan
from sidecar.offload.validation import validate_objects
from sidecar.settings import load
from tests import podshapes
from tests.poddiff import differences, undocumented

UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
SCHEMA = "1.35.0"
SETTINGS = load(
    None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", "OFFLOADING_NAMESPACE_PREFIX": "offloading"}
)


def plan_for(body: dict[str, Any], settings: Any = SETTINGS) -> OffloadPlan:
    return build_plan(
        wire.parse_create(body), offloading=settings.offloading, mesh_settings=settings.mesh
    )


def by_kind(plan: OffloadPlan, kind: str) -> dict[str, dict[str, Any]]:
    objs = {
        "ConfigMap": plan.config_maps,
        "Secret": plan.secrets,
        "PersistentVolumeClaim": plan.pvcs,
    }[kind]
    return {o["metadata"]["name"]: o for o in objs}


@pytest.mark.parametrize("shape", sorted(podshapes.SHAPES))
def test_every_shape_differs_only_by_documented_rewrites(shape: str) -> None:
    body = podshapes.SHAPES[shape](UID)
    before = copy.deepcopy(body)
    plan = plan_for(body)
    assert body == before, "the request must not be modified"
    assert undocumented(body["pod"], plan.pod) == []
    validate_objects(plan.objects(), SCHEMA)
    for obj in plan.objects():
        labels = obj["metadata"]["labels"]
        assert labels[naming.POD_UID_LABEL] == UID
        assert obj["metadata"]["annotations"]["interlink.io/source.uid"]
        assert obj["metadata"]["namespace"] == "offloading-default"


def test_everything_else_reaches_the_remote_pod() -> None:
    for shape in (
        "probes-and-hooks",
        "security-context",
        "resources",
        "tricky-args",
        "init-and-native-sidecar",
    ):
        body = podshapes.SHAPES[shape](UID)
        plan = plan_for(body)
        local_spec, remote_spec = body["pod"]["spec"], plan.pod["spec"]
        for list_name in ("containers", "initContainers"):
            for local, remote in zip(
                local_spec.get(list_name) or [], remote_spec.get(list_name) or [], strict=True
            ):
                assert local == remote
        for key in ("securityContext", "imagePullSecrets", "hostname", "restartPolicy"):
            assert local_spec.get(key) == remote_spec.get(key)


def test_shared_config_map_and_secret_are_copied_once_with_the_same_bytes() -> None:
    body = podshapes.shared_volumes(UID)
    plan = plan_for(body)
    cm_name = naming.scoped_name("app-config", UID)
    sec_name = naming.scoped_name("app-secret", UID)
    config_maps, secrets = by_kind(plan, "ConfigMap"), by_kind(plan, "Secret")
    assert [o["metadata"]["name"] for o in plan.config_maps].count(cm_name) == 1
    local_cm = body["container"][1]["configMaps"][0]
    assert config_maps[cm_name]["data"] == local_cm["data"]
    assert config_maps[cm_name]["binaryData"] == local_cm["binaryData"]
    assert secrets[sec_name]["data"] == body["container"][1]["secrets"][0]["data"]
    volumes = {v["name"]: v for v in plan.pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"] == {
        **body["pod"]["spec"]["volumes"][0]["configMap"],
        "name": cm_name,
    }
    assert volumes["creds"]["secret"]["secretName"] == sec_name
    assert volumes["creds"]["secret"]["defaultMode"] == 0o400
    assert volumes["scratch"] == body["pod"]["spec"]["volumes"][2]


def test_projected_service_account_data_is_split_into_secret_and_config_map() -> None:
    plan = plan_for(podshapes.shared_volumes(UID))
    volume = next(v for v in plan.pod["spec"]["volumes"] if v["name"].startswith("kube-api"))
    assert volume["projected"]["defaultMode"] == 420
    sources = {next(iter(s)): s[next(iter(s))] for s in volume["projected"]["sources"]}
    token_secret = by_kind(plan, "Secret")[sources["secret"]["name"]]
    config = by_kind(plan, "ConfigMap")[sources["configMap"]["name"]]
    assert {i["path"] for i in sources["secret"]["items"]} == {"token"}
    assert {i["path"] for i in sources["configMap"]["items"]} == {"ca.crt", "namespace"}
    key = {i["path"]: i["key"] for i in sources["configMap"]["items"]}
    assert config["data"][key["ca.crt"]] == podshapes.CA_PEM  # newlines kept
    assert token_secret["stringData"]["token"].startswith("eyJ")


def test_projected_item_modes_and_nested_paths_are_kept() -> None:
    plan = plan_for(podshapes.shared_volumes(UID))
    volume = next(v for v in plan.pod["spec"]["volumes"] if v["name"] == "podinfo")
    items = volume["projected"]["sources"][0]["configMap"]["items"]
    by_path = {i["path"]: i for i in items}
    assert by_path["deep/name"]["mode"] == 0o400
    assert "/" not in by_path["deep/name"]["key"]


def test_unsupported_volume_is_dropped_with_its_mounts_and_a_warning() -> None:
    body = podshapes.multi_container(UID)
    spec = body["pod"]["spec"]
    spec["volumes"] = [{"name": "host", "hostPath": {"path": "/var/log"}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "host", "mountPath": "/host"}]
    plan = plan_for(body)
    assert "volumes" not in plan.pod["spec"]
    assert "volumeMounts" not in plan.pod["spec"]["containers"][0]
    assert any("'host'" in w and "default/multi" in w and "hostPath" in w for w in plan.warnings)
    assert differences(body["pod"], plan.pod) >= {
        "spec.volumes{host}",
        "spec.containers{web}.volumeMounts{host}",
    }


def test_env_references_are_renamed_and_field_refs_resolved() -> None:
    plan = plan_for(podshapes.env_refs(UID))
    env = {e["name"]: e for e in plan.pod["spec"]["containers"][0]["env"]}
    assert env["MODE"]["valueFrom"]["configMapKeyRef"]["name"] == naming.scoped_name(
        "env-config", UID
    )
    assert env["TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == naming.scoped_name(
        "env-secret", UID
    )
    assert env["MY_NAME"] == {"name": "MY_NAME", "value": "envs"}
    assert env["MY_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    env_from = plan.pod["spec"]["containers"][0]["envFrom"]
    assert env_from[0] == {
        "configMapRef": {"name": naming.scoped_name("env-config", UID)},
        "prefix": "CFG_",
    }


@pytest.mark.parametrize(("account", "expected"), [("builder", "builder"), (None, "default")])
def test_a_service_account_field_ref_gets_the_local_pods_account(
    account: str | None, expected: str
) -> None:
    """The remote pod loses its service account (it does not exist there): without this
    the program would read ``default`` for any account."""
    body = podshapes.env_refs(UID)
    spec = body["pod"]["spec"]
    spec.pop("serviceAccountName", None)
    if account is not None:
        spec["serviceAccountName"] = account
    spec["containers"][0]["env"].append(
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}}
    )
    plan = plan_for(body)
    env = {e["name"]: e for e in plan.pod["spec"]["containers"][0]["env"]}
    assert env["SA"] == {"name": "SA", "value": expected}
    assert "serviceAccountName" not in plan.pod["spec"]


def test_unresolvable_env_reference_is_refused_naming_the_field() -> None:
    body = podshapes.resources(UID)
    body["pod"]["spec"]["containers"][0]["env"] = [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "never-sent", "key": "k"}}}
    ]
    with pytest.raises(wire.WireError) as caught:
        plan_for(body)
    assert caught.value.status == 422
    assert "pod.spec.containers[0].env[0].valueFrom.secretKeyRef" in caught.value.message


def test_mounted_config_map_that_was_not_sent_is_refused() -> None:
    body = podshapes.env_refs(UID)
    body["container"][0]["configMaps"] = None
    with pytest.raises(wire.WireError, match=r"pod.spec.volumes\[0\].configMap.name"):
        plan_for(body)


def test_virtual_node_scheduling_is_removed_and_config_merged() -> None:
    settings = load(
        None,
        {
            "APP_SOCKET_ADDRESS": "unix:///x.sock",
            "OFFLOADING_NODE_SELECTOR": '{"gpu": "t4", "disk": "nvme"}',
            "OFFLOADING_NODE_TOLERATIONS": '[{"key": "nvidia.com/gpu", "operator": "Exists"}]',
        },
    )
    body = podshapes.resources(UID)
    spec = body["pod"]["spec"]
    spec["nodeSelector"] = {
        "virtual-node.interlink/type": "virtual-kubelet",
        "disk": "ssd",
        "zone": "a",
    }
    spec["tolerations"].append({"key": "user", "operator": "Exists"})
    spec["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": ["virtual-kubelet"],
                            },
                            {"key": "arch", "operator": "In", "values": ["amd64"]},
                        ]
                    }
                ]
            }
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "podAffinityTerm": {
                        "topologyKey": "zone",
                        "labelSelector": {"matchLabels": {"app": "x"}},
                    },
                }
            ]
        },
    }
    remote = plan_for(body, settings).pod["spec"]
    assert remote["nodeSelector"] == {"disk": "nvme", "zone": "a", "gpu": "t4"}
    assert remote["tolerations"] == [
        {"key": "user", "operator": "Exists"},
        {"key": "nvidia.com/gpu", "operator": "Exists"},
    ]
    terms = remote["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}
    ]
    assert remote["affinity"]["podAntiAffinity"] == spec["affinity"]["podAntiAffinity"]


def test_pvcs_follow_the_annotation_and_never_keep_local_bindings() -> None:
    plan = plan_for(podshapes.pvcs(UID))
    pvcs = by_kind(plan, "PersistentVolumeClaim")
    assert set(pvcs) == {"data-delete", "data-retain"}
    for name, policy in (("data-delete", "delete"), ("data-retain", "retain")):
        annotations = pvcs[name]["metadata"]["annotations"]
        assert annotations["interlink.io/pvc-retention-policy"] == policy
        assert annotations["interlink.io/created-by"] == "interlink-k8s-sidecar"
        assert "volumeName" not in pvcs[name]["spec"]
        assert "storageClassName" not in pvcs[name]["spec"]
    body = podshapes.pvcs(UID)
    body["pod"]["metadata"]["annotations"] = {}
    unlisted = plan_for(body)
    assert unlisted.pvcs == [] and "volumes" not in unlisted.pod["spec"]
    assert len(unlisted.warnings) == 2


MESH_SCRIPT = "#!/bin/bash\necho 'PrivateKey = c2VjcmV0'\nwg setconf\n"
PRE_EXEC = f"cat <<'EOFMESH' > $TMPDIR/mesh.sh\n{MESH_SCRIPT}EOFMESHecho user pre-exec"


def mesh_body() -> dict[str, Any]:
    body = podshapes.resources(UID)
    body["pod"]["metadata"]["annotations"] = {
        mesh.PRE_EXEC_ANNOTATION: PRE_EXEC,
        "interlink.eu/wireguard-client-snippet": "PrivateKey = c2VjcmV0",
    }
    return body


def test_mesh_script_goes_to_a_secret_not_to_args_or_annotations() -> None:
    assert mesh.extract_mesh_script(PRE_EXEC) == MESH_SCRIPT
    plan = plan_for(mesh_body())
    sidecar = plan.pod["spec"]["initContainers"][-1]
    assert sidecar["name"] == "mesh-setup" and sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == SETTINGS.mesh.image and ":latest" not in sidecar["image"]
    assert "startupProbe" in sidecar
    rendered = str(plan.pod)
    assert "c2VjcmV0" not in rendered
    assert base64.b64encode(MESH_SCRIPT.encode()).decode() not in rendered
    secret = by_kind(plan, "Secret")[naming.scoped_name("mesh", UID)]
    assert secret["stringData"]["mesh.sh"] == MESH_SCRIPT
    validate_objects(plan.objects(), SCHEMA)


def test_mesh_as_regular_container_has_no_startup_probe() -> None:
    settings = load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", "MESH_INIT_CONTAINER": "false"})
    plan = plan_for(mesh_body(), settings)
    sidecar = plan.pod["spec"]["containers"][-1]
    assert sidecar["name"] == "mesh-setup"
    assert "startupProbe" not in sidecar and "restartPolicy" not in sidecar


@pytest.mark.parametrize("slurm", ["true", "false"])
def test_mesh_setup_script_is_valid_shell(slurm: str) -> None:
    settings = load(
        None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", "MESH_SLURM_SETUP_SCRIPT": slurm}
    )
    script = plan_for(mesh_body(), settings).pod["spec"]["initContainers"][-1]["args"][0]
    assert script.startswith("set -eu\n")
    check = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    if slurm == "true":
        assert "\nEOFWRAPPER\n" in script  # terminator at column 0 (upstream's was indented)


def test_schema_rejection_names_the_field() -> None:
    plan = plan_for(podshapes.resources(UID))
    plan.pod["spec"]["containers"][0]["image"] = 42
    with pytest.raises(wire.WireError) as caught:
        validate_objects(plan.objects(), SCHEMA)
    assert caught.value.status == 422
    assert caught.value.message.startswith("pod.spec.containers[0].image:")


def test_readme_lists_every_rewrite() -> None:
    readme = podshapes.__file__.rsplit("/tests/", 1)[0] + "/README.md"
    with open(readme) as handle:
        assert markdown_table() in handle.read()
    assert len(REWRITES) > 10


def test_schema_package_knows_the_test_cluster_version() -> None:
    kubernetes_validate.validate(plan_for(podshapes.resources(UID)).pod, SCHEMA, strict=True)
