"""The plain YAML in ``manifests/``: every object valid for Kubernetes (kubernetes-validate,
strict: unknown fields refused), the remote RBAC exactly the documented least privilege,
and the examples consistent with the sidecar (its config loads, the pods translate)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sidecar.api import wire
from sidecar.offload.translate import build_plan
from sidecar.offload.validation import schema_version
from sidecar.settings import load

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
RBAC = MANIFESTS / "rbac" / "remote-rbac.yaml"
EXAMPLES = MANIFESTS / "examples"
SCHEMA = schema_version("1.35")
FILES = sorted(MANIFESTS.rglob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def named(path: Path, kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in documents(path) if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_the_expected_manifests_exist() -> None:
    expected = {
        "rbac/remote-rbac.yaml",
        "examples/sidecar-deployment.yaml",
        "examples/pod-microservice.yaml",
        "examples/pod-with-pvc.yaml",
    }
    assert expected <= {str(p.relative_to(MANIFESTS)) for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_every_object_is_valid_kubernetes(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{path}: no objects"
    for doc in docs:
        name = f"{doc.get('kind')} {(doc.get('metadata') or {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, SCHEMA, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {name}: {'.'.join(map(str, exc.path))}: {exc.message}")


# --- RBAC -------------------------------------------------------------------------------

# Every (apiGroup, resource, verb) the remote ServiceAccount holds, and nothing else.
# Changing the manifest means changing this set on purpose (and the rule's comment).
GRANTED = {
    ("", "namespaces", "get"),
    ("", "namespaces", "create"),
    ("", "namespaces", "delete"),
    ("", "nodes", "list"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "pods", "create"),
    ("", "pods", "get"),
    ("", "pods", "delete"),
    ("", "pods/log", "get"),
    ("", "pods/portforward", "get"),
    ("", "pods/portforward", "create"),
    *(("", r, v) for r in ("configmaps", "secrets") for v in ("create", "get", "list", "delete")),
    *(("", "persistentvolumeclaims", v) for v in ("create", "get", "list", "patch", "delete")),
}
NEVER_VERBS = {"*", "escalate", "bind", "impersonate", "update", "deletecollection"}


def rbac_rules() -> list[dict[str, Any]]:
    return [
        rule
        for doc in documents(RBAC)
        if doc["kind"] in ("ClusterRole", "Role")
        for rule in doc.get("rules") or []
    ]


def test_rbac_has_no_wildcards_and_no_dangerous_verbs() -> None:
    rules = rbac_rules()
    assert rules
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            for value in rule.get(key) or []:
                assert "*" not in value, (key, rule)
        assert not NEVER_VERBS & set(rule["verbs"]), rule
        assert "nonResourceURLs" not in rule, "GET /version is already public"
        assert not rule.get("resourceNames")  # none needed: names are only known at run time
    for doc in documents(RBAC):
        assert "aggregationRule" not in doc


def test_rbac_grants_exactly_the_documented_set() -> None:
    granted = {
        (group, resource, verb)
        for rule in rbac_rules()
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == GRANTED
    secrets = {verb for group, resource, verb in granted if resource == "secrets"}
    assert "watch" not in secrets


def test_every_rbac_rule_has_a_comment_saying_why() -> None:
    lines = RBAC.read_text().splitlines()
    rule_lines = [i for i, line in enumerate(lines) if re.match(r"\s*- apiGroups:", line)]
    assert len(rule_lines) == len(rbac_rules())
    for index in rule_lines:
        above = lines[index - 1].strip()
        assert above.startswith("#") and len(above) > 2, f"line {index + 1}: no comment above"


def test_bindings_give_the_manifest_roles_to_the_manifest_service_account_only() -> None:
    docs = documents(RBAC)
    (account,) = [d["metadata"] for d in docs if d["kind"] == "ServiceAccount"]
    assert account["namespace"] in {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    roles = {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"}
    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert {b["roleRef"]["name"] for b in bindings} == roles  # every role bound, no other
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "ClusterRole"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]


# --- examples ---------------------------------------------------------------------------

DEPLOYMENT = EXAMPLES / "sidecar-deployment.yaml"


def test_deployment_config_loads_and_matches_the_pod(tmp_path: Path) -> None:
    data = named(DEPLOYMENT, "ConfigMap", "interlink-sidecar-config")["data"]
    config = tmp_path / "config.ini"
    config.write_text(data["config.ini"])
    settings = load(config, {})
    interlink = yaml.safe_load(data["InterLinkConfig.yaml"])
    (listen,) = settings.app.listen
    assert listen.url == interlink["SidecarURL"]
    assert settings.app.ops_address == "0.0.0.0"  # the kubelet probes the pod IP

    pod = named(DEPLOYMENT, "Deployment", "interlink-sidecar")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    sidecar, api = containers["sidecar"], containers["interlink"]
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    socket_dir = str(Path(listen.path).parent)
    assert mounts["sockets"] == socket_dir
    assert {m["name"]: m["mountPath"] for m in api["volumeMounts"]}["sockets"] == socket_dir
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["sockets"]
    assert mounts["state"] == settings.app.state_dir
    kubeconfig = Path(settings.k8s.kubeconfig_path)
    assert mounts["remote-kubeconfig"] == str(kubeconfig.parent)
    secret = volumes["remote-kubeconfig"]["secret"]
    assert kubeconfig.name in {item["path"] for item in secret["items"]}
    assert sidecar["args"] == ["--config", mounts["config"]]

    ops = {p["name"]: p["containerPort"] for p in sidecar["ports"]}["ops"]
    assert ops == settings.app.ops_port
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert pod["terminationGracePeriodSeconds"] > settings.app.shutdown_timeout_seconds
    api_port = {p["name"]: p["containerPort"] for p in api["ports"]}["api"]
    assert str(api_port) == interlink["InterlinkPort"]


def test_deployment_example_is_closed_like_the_chart(tmp_path: Path) -> None:
    data = named(DEPLOYMENT, "ConfigMap", "interlink-sidecar-config")["data"]
    config = tmp_path / "config.ini"
    config.write_text(data["config.ini"])
    deployment = named(DEPLOYMENT, "Deployment", "interlink-sidecar")["spec"]["template"]
    containers = {c["name"]: c for c in deployment["spec"]["containers"]}
    env = {e["name"]: e for e in containers["sidecar"]["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    settings = load(config, {"POD_NAMESPACE": "interlink"})
    assert settings.offloading.own_namespace == "interlink"
    assert "kube-system" in settings.offloading.namespace_deny
    # The plugin API on no network: the only TCP listener is the ops server.
    assert [a.kind.value for a in settings.app.listen] == ["unix"]

    # The journal on a claim.
    (state,) = [v for v in deployment["spec"]["volumes"] if v["name"] == "state"]
    claim = named(DEPLOYMENT, "PersistentVolumeClaim", state["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]

    # Every port of the pod admitted by the NetworkPolicy, from somebody in particular.
    policy = named(DEPLOYMENT, "NetworkPolicy", "interlink-sidecar")["spec"]
    labels = deployment["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["ingress"]}
    ports = {p["name"] for c in containers.values() for p in c.get("ports", [])}
    assert set(rules) == ports and all(rules.values())


def test_deployment_config_has_only_known_sections() -> None:
    data = named(DEPLOYMENT, "ConfigMap", "interlink-sidecar-config")["data"]
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(data["config.ini"])
    assert set(parser.sections()) <= {"app", "log", "k8s", "offloading", "mesh", "tcp_tunnel"}


SETTINGS = load(
    None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", "OFFLOADING_NAMESPACE_PREFIX": "offloading"}
)
UID = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"


def as_interlink_sends(pod: dict[str, Any], pvcs: list[dict[str, Any]]) -> dict[str, Any]:
    """The create body interLink would send for ``pod`` once scheduled on the node."""
    sent = {**pod, "metadata": {**pod["metadata"], "uid": UID}}
    sent["spec"] = {**pod["spec"], "nodeName": "virtual-kubelet"}
    entries = [
        {"name": c["name"], "configMaps": [], "secrets": [], "emptyDirs": []}
        for c in pod["spec"]["containers"]
    ]
    entries[0]["persistentVolumeClaims"] = pvcs
    return {"pod": sent, "container": entries, "jobConfig": {}}


def test_microservice_pod_is_a_tunnel_candidate_and_leaves_the_virtual_node() -> None:
    (pod,) = documents(EXAMPLES / "pod-microservice.yaml")
    assert pod["metadata"]["annotations"]["interlink.io/tcp-tunnel"] == "true"
    ports = [p for c in pod["spec"]["containers"] for p in c.get("ports") or []]
    assert ports and all(p.get("protocol", "TCP") == "TCP" for p in ports)
    plan = build_plan(
        wire.parse_create(as_interlink_sends(pod, [])),
        offloading=SETTINGS.offloading,
        mesh_settings=SETTINGS.mesh,
    )
    assert plan.warnings == []
    remote = plan.pod
    assert "virtual-node.interlink/type" not in (remote["spec"].get("nodeSelector") or {})
    assert not remote["spec"].get("tolerations")
    assert remote["metadata"]["annotations"]["interlink.io/tcp-tunnel"] == "true"


def test_pvc_pod_keeps_its_claim_remotely() -> None:
    docs = documents(EXAMPLES / "pod-with-pvc.yaml")
    (pvc,) = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    claim = pvc["metadata"]["name"]
    assert pod["metadata"]["annotations"]["interlink.io/remote-pvc"] == claim
    plan = build_plan(
        wire.parse_create(as_interlink_sends(pod, [pvc])),
        offloading=SETTINGS.offloading,
        mesh_settings=SETTINGS.mesh,
    )
    assert plan.warnings == []
    volumes = plan.pod["spec"]["volumes"]
    assert volumes == [{"name": claim, "persistentVolumeClaim": {"claimName": claim}}]
    (remote_pvc,) = plan.pvcs
    assert remote_pvc["metadata"]["name"] == claim
    assert remote_pvc["metadata"]["annotations"]["interlink.io/pvc-retention-policy"] == "retain"
