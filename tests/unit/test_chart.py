"""The Helm chart: linted, rendered, and every rendered object checked.

helm is built once from the Go module proxy (``tests.localcluster.tools``; about 2 min
cold on 2 cores, then cached) or taken from ``$HELM_BIN``. In CI (``CI`` set) a missing
helm fails these tests; elsewhere they are skipped with the reason. Rendered objects are
validated with kubernetes-validate (strict) against two Kubernetes minors; the
ServiceMonitor (a CRD it does not know) is checked structurally. The rest asserts what a
user would notice: probes on the ops port, the restricted security context, a config.ini
the sidecar's own loader accepts, Secrets mounted where the config points, the unix
socket shared through an emptyDir in ``sidecar`` mode, and the closed defaults (README
"Security"): ``sidecar`` mode, a NetworkPolicy covering every port the sidecar opens
beyond loopback, the journal on a PersistentVolumeClaim, the pod's namespace denied as a
remote namespace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sidecar import insecure, settings
from sidecar.core.shape import WireError
from sidecar.offload.namespace_guard import check_remote_namespace
from sidecar.settings import ListenKind
from tests.localcluster.tools import HELM, ToolError, ensure_tool, tool_directory

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
# The oldest and the newest minor kubernetes-validate ships that this chart targets.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
RELEASE, NAMESPACE = "rel", "ns"
# The first test that needs helm may build it (about 2 min cold); every helm call has its
# own timeout below, so a hang still ends.
pytestmark = pytest.mark.timeout(900)

# Rendering variants: values files and --set pairs.
VARIANTS: dict[str, tuple[tuple[Path, ...], tuple[str, ...]]] = {
    "default": ((), ()),
    "default-deployment-mode": ((), ("mode=deployment",)),
    "all-on": ((ALL_ON,), ()),
    "all-on-deployment-mode": ((ALL_ON,), ("mode=deployment",)),
    "opted-out": ((), ("state.persistent=false", "networkPolicy.enabled=false")),
    "existing-claim": ((), ("mode=deployment", "state.existingClaim=my-claim")),
    "existing-secrets": (
        (),
        (
            "remoteKubeconfig.existingSecret=my-kubeconfig",
            "ssh.existingSecret=my-ssh",
            "config.tcp_tunnel.enabled=true",
            "config.tcp_tunnel.gateway_host=gw",
            "config.tcp_tunnel.gateway_port=22",
        ),
    ),
}

Obj = dict[str, Any]


# --- helm -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[helm] {line}")

    try:
        binary = ensure_tool(HELM, progress=progress)
    except ToolError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"helm is mandatory in CI and could not be had: {exc}")
        pytest.skip(f"no helm: {exc}")
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


class Helm:
    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        # helm's own cache/config/data out of the user's home.
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        self._rendered: dict[str, list[Obj]] = {}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=self.env,
        )

    def template_args(self, values: tuple[Path, ...], sets: tuple[str, ...]) -> list[str]:
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        for path in values:
            args += ["--values", str(path)]
        for pair in sets:
            args += ["--set", pair]
        return args

    def render(self, values: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> list[Obj]:
        key = repr((values, sets))
        if key not in self._rendered:
            done = self.run(*self.template_args(values, sets))
            assert done.returncode == 0, done.stderr
            self._rendered[key] = [o for o in yaml.safe_load_all(done.stdout) if o]
        return self._rendered[key]

    def variant(self, name: str) -> list[Obj]:
        return self.render(*VARIANTS[name])

    def refuse(self, *sets: str) -> str:
        """helm template's error for values the chart must refuse."""
        done = self.run(*self.template_args((), sets))
        assert done.returncode != 0, f"{sets} rendered:\n{done.stdout[:500]}"
        return done.stderr


# --- helpers over rendered objects ----------------------------------------------------


def only(objects: list[Obj], kind: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def by_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def pod_spec(objects: list[Obj]) -> Obj:
    spec: Obj = only(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(objects: list[Obj], name: str) -> Obj:
    found: list[Obj] = [c for c in pod_spec(objects)["containers"] if c["name"] == name]
    assert len(found) == 1, f"{len(found)} containers named {name}"
    return found[0]


def volume(objects: list[Obj], name: str) -> Obj:
    found: list[Obj] = [v for v in pod_spec(objects)["volumes"] if v["name"] == name]
    assert len(found) == 1, f"{len(found)} volumes named {name}"
    return found[0]


def load_config(
    objects: list[Obj], tmp_path: Path, environ: dict[str, str] | None = None
) -> settings.Settings:
    path = tmp_path / "config.ini"
    path.write_text(only(objects, "ConfigMap")["data"]["config.ini"])
    return settings.load(path, environ=environ or {})


def mounted_file(objects: list[Obj], container_name: str, file_path: str) -> tuple[Obj, str]:
    """The volume and the key/path inside it that ``file_path`` resolves to."""
    for mount in container(objects, container_name)["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if file_path.startswith(prefix) and "subPath" not in mount:
            vol = volume(objects, mount["name"])
            relative = file_path[len(prefix) :]
            source = vol.get("secret") or vol.get("configMap") or {}
            for item in source.get("items", []):
                if item["path"] == relative:
                    return vol, item["key"]
            return vol, relative
    raise AssertionError(f"{file_path} is not on a volume of container {container_name}")


# --- lint and schema ------------------------------------------------------------------


def test_lint_passes_for_default_and_all_on_values(helm: Helm) -> None:
    for extra in ([], ["--values", str(ALL_ON)]):
        done = helm.run("lint", "--strict", str(CHART), *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_objects_are_valid_kubernetes(helm: Helm, variant: str, version: str) -> None:
    objects = helm.variant(variant)
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: see test_service_monitor_scrapes_the_ops_port
        where = f"{obj['kind']} {obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{variant}: {where}.{path}: {exc.message} (Kubernetes {version})")
        assert obj["metadata"].get("namespace", NAMESPACE) == NAMESPACE, where


def test_default_render_has_the_expected_objects(helm: Helm) -> None:
    # Closed by default, in both modes: a NetworkPolicy, and a claim for the journal.
    for variant in ("default", "default-deployment-mode"):
        kinds = sorted(o["kind"] for o in helm.variant(variant))
        assert kinds == [
            "ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "Service",
            "ServiceAccount",
        ], variant  # fmt: skip
    kinds = sorted(o["kind"] for o in helm.variant("all-on"))
    assert kinds == [
        "ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "Secret", "Secret",
        "Service", "ServiceAccount", "ServiceMonitor",
    ]  # fmt: skip
    kinds = sorted(o["kind"] for o in helm.variant("opted-out"))
    assert kinds == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]


def test_service_monitor_scrapes_the_ops_port(helm: Helm) -> None:
    objects = helm.variant("all-on")
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}
    assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "http"
    assert re.fullmatch(r"\d+[smh]", endpoint["interval"]), endpoint
    ops = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert ops and ops[0]["targetPort"] == "ops"
    assert not by_kind(helm.variant("default"), "ServiceMonitor")


# --- what a user notices --------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_probes_and_service_use_the_ops_port(helm: Helm, variant: str, tmp_path: Path) -> None:
    objects = helm.variant(variant)
    config = load_config(objects, tmp_path)
    sidecar = container(objects, "sidecar")
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports["ops"] == config.app.ops_port
    assert config.app.ops_address == "0.0.0.0", "the kubelet probes the pod IP"
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    service = only(objects, "Service")
    (ops,) = [p for p in service["spec"]["ports"] if p["name"] == "ops"]
    assert ops["targetPort"] == "ops" and ops["port"] == config.app.ops_port


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_security_context_is_restricted(helm: Helm, variant: str, tmp_path: Path) -> None:
    objects = helm.variant(variant)
    spec = pod_spec(objects)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    for c in spec["containers"]:
        context = c["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001, c["name"]
        assert context["readOnlyRootFilesystem"] is True, c["name"]
        assert context["allowPrivilegeEscalation"] is False, c["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
        assert "privileged" not in context and "hostPort" not in str(c.get("ports"))
        writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
        assert "/tmp" in writable, c["name"]
    assert not any("hostPath" in v for v in spec["volumes"])
    config = load_config(objects, tmp_path)
    state = [m for m in container(objects, "sidecar")["volumeMounts"] if m["name"] == "state"]
    assert state and state[0]["mountPath"] == config.app.state_dir
    assert "emptyDir" in volume(objects, "state") or "persistentVolumeClaim" in volume(
        objects, "state"
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_config_ini_loads_and_its_files_are_mounted(
    helm: Helm, variant: str, tmp_path: Path
) -> None:
    objects = helm.variant(variant)
    config = load_config(objects, tmp_path)
    sidecar = container(objects, "sidecar")
    assert sidecar["args"][0] == "--config"
    vol, key = mounted_file(objects, "sidecar", sidecar["args"][1])
    assert vol["configMap"]["name"] == only(objects, "ConfigMap")["metadata"]["name"]
    assert key == "config.ini"

    kubeconfig_volume, kubeconfig_key = mounted_file(objects, "sidecar", config.k8s.kubeconfig_path)
    secret_name = kubeconfig_volume["secret"]["secretName"]
    files = [(config.k8s.kubeconfig_path, kubeconfig_volume, kubeconfig_key)]
    if config.tcp_tunnel.enabled:
        for path in (config.tcp_tunnel.private_key_file, config.tcp_tunnel.known_hosts_file):
            files.append((path, *mounted_file(objects, "sidecar", path)))
    for path, vol, key in files:
        mount = [m for m in sidecar["volumeMounts"] if m["name"] == vol["name"]]
        assert mount[0]["readOnly"] is True, path
        assert vol["secret"]["defaultMode"] == 0o440, path
        name = vol["secret"]["secretName"]
        secrets = {s["metadata"]["name"]: s["data"] for s in by_kind(objects, "Secret")}
        if name in secrets:
            assert key in secrets[name], f"{path}: key {key} not in Secret {name}"
        else:  # the user's Secret (existingSecret, or the default name NOTES.txt gives)
            assert not variant.startswith("all-on"), f"{path}: Secret {name} not rendered"
    if variant == "existing-secrets":
        assert secret_name == "my-kubeconfig"
        assert not by_kind(objects, "Secret")


def test_all_on_config_sets_every_key_and_the_pod_uses_them(helm: Helm, tmp_path: Path) -> None:
    objects = helm.variant("all-on")
    config = load_config(objects, tmp_path)
    text = only(objects, "ConfigMap")["data"]["config.ini"]
    rendered = {
        (section, line.split(" = ")[0])
        for section, body in re.findall(r"^\[(\w+)\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
        for line in body.splitlines()
        if " = " in line
    }
    expected = {(key.section, key.name) for key in settings.KEYS}
    credentials = {("k8s", "kubeconfig"), ("tcp_tunnel", "gateway_ssh_private_key")}
    assert expected - rendered == credentials | {("app", "socket_port")}, "unix socket mode"
    assert config.offloading.node_selector == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert config.offloading.node_tolerations[0]["effect"] == "NoSchedule"
    assert config.app.janitor_max_backoff_seconds == 30.5
    assert config.app.socket_mode == 0o660
    assert config.k8s.client_configuration == {"verify_ssl": True, "connection_pool_maxsize": 8}
    assert config.tcp_tunnel.port_range == (31000, 31999)


def test_all_on_values_set_every_value_of_values_yaml() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    all_on = yaml.safe_load(ALL_ON.read_text())

    def missing(base: Obj, other: Obj, prefix: str) -> Iterator[str]:
        for key, value in base.items():
            if key not in other:
                yield prefix + key
            elif isinstance(value, dict) and value and isinstance(other[key], dict):
                yield from missing(value, other[key], f"{prefix}{key}.")

    # Alternatives to what all-on sets (existing Secrets and claim instead of chart-made
    # ones, an emptyDir's size instead of a claim), covered by the "existing-secrets",
    # "existing-claim" and "opted-out" variants.
    alternatives = [
        "remoteKubeconfig.existingSecret", "ssh.existingSecret", "state.existingClaim",
        "state.sizeLimit",
    ]  # fmt: skip
    assert list(missing(defaults, all_on, "")) == alternatives


def test_deployment_mode_serves_the_plugin_api_on_tcp(helm: Helm, tmp_path: Path) -> None:
    for variant in ("default-deployment-mode", "all-on-deployment-mode"):
        objects = helm.variant(variant)
        config = load_config(objects, tmp_path)
        (listen,) = config.app.listen
        assert listen.kind is ListenKind.TCP and listen.host == "0.0.0.0"
        ports = {p["name"]: p["containerPort"] for p in container(objects, "sidecar")["ports"]}
        assert ports["plugin"] == listen.port
        service = {p["name"]: p for p in only(objects, "Service")["spec"]["ports"]}
        assert service["plugin"]["targetPort"] == "plugin" and "interlink" not in service
        assert [c["name"] for c in pod_spec(objects)["containers"]] == ["sidecar"]
        assert "InterLinkConfig.yaml" not in only(objects, "ConfigMap")["data"]


@pytest.mark.parametrize("variant", ["default", "all-on"])
def test_sidecar_mode_shares_the_socket_through_an_emptydir(
    helm: Helm, variant: str, tmp_path: Path
) -> None:
    objects = helm.variant(variant)
    config = load_config(objects, tmp_path)
    (listen,) = config.app.listen
    assert listen.kind is ListenKind.UNIX
    socket_dir = str(Path(listen.path).parent)
    shared = []
    for name in ("sidecar", "interlink"):
        mounts = [
            m for m in container(objects, name)["volumeMounts"] if m["mountPath"] == socket_dir
        ]
        assert len(mounts) == 1 and not mounts[0].get("readOnly"), name
        shared.append(mounts[0]["name"])
    assert shared[0] == shared[1]
    assert "emptyDir" in volume(objects, shared[0])
    # Both containers run in the socket's group (socket mode 0660).
    assert pod_spec(objects)["securityContext"]["runAsGroup"] == 10001
    assert config.app.socket_mode & 0o060 == 0o060

    interlink = container(objects, "interlink")
    env = {e["name"]: e.get("value") for e in interlink["env"]}
    vol, key = mounted_file(objects, "interlink", env["INTERLINKCONFIGPATH"])
    interlink_config = yaml.safe_load(only(objects, "ConfigMap")["data"][key])
    assert vol["configMap"]["name"] == only(objects, "ConfigMap")["metadata"]["name"]
    assert interlink_config["SidecarURL"] == f"unix://{listen.path}"
    port = {p["name"]: p["containerPort"] for p in interlink["ports"]}["interlink"]
    assert interlink_config["InterlinkPort"] == str(port)
    service = {p["name"]: p for p in only(objects, "Service")["spec"]["ports"]}
    assert service["interlink"]["targetPort"] == "interlink" and "plugin" not in service
    assert re.fullmatch(
        r"ghcr\.io/interlink-hq/interlink/interlink:\d+\.\d+\.\d+(@.*)?", interlink["image"]
    )


# --- closed by default (README "Security") --------------------------------------------


def test_sidecar_mode_over_a_unix_socket_is_the_default(helm: Helm, tmp_path: Path) -> None:
    assert yaml.safe_load((CHART / "values.yaml").read_text())["mode"] == "sidecar"
    config = load_config(helm.variant("default"), tmp_path)
    assert [a.kind for a in config.app.listen] == [ListenKind.UNIX]


def ingress_rules(policy: Obj) -> dict[str, list[Obj]]:
    """Port name -> the peers admitted to it."""
    rules: dict[str, list[Obj]] = {}
    for rule in policy["spec"]["ingress"]:
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP"
        assert rule["from"], f"port {port['port']}: no 'from' admits every source"
        rules[port["port"]] = rule["from"]
    return rules


@pytest.mark.parametrize("variant", sorted(set(VARIANTS) - {"opted-out"}))
def test_network_policy_covers_every_port_open_beyond_loopback(
    helm: Helm, variant: str, tmp_path: Path
) -> None:
    objects = helm.variant(variant)
    policy = only(objects, "NetworkPolicy")
    template = only(objects, "Deployment")["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        template["metadata"]["labels"].items()
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = ingress_rules(policy)
    # Every port of the pod has its rule, and the policy admits nothing else.
    ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    assert set(rules) == ports
    # Every listener of the sidecar that is not loopback is a port of the pod.
    config = load_config(objects, tmp_path)
    declared = {p["containerPort"]: p["name"] for p in container(objects, "sidecar")["ports"]}
    listening = [(config.app.ops_address, config.app.ops_port)] + [
        (a.host, a.port) for a in config.app.listen if a.kind is ListenKind.TCP
    ]
    for host, port in listening:
        if not insecure.is_loopback(host):
            assert declared.get(port) in rules, f"{host}:{port} is open and not in the policy"


def test_default_network_policy_admits_the_release_namespace_and_monitoring(helm: Helm) -> None:
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    for variant, api in (("default", "interlink"), ("default-deployment-mode", "plugin")):
        rules = ingress_rules(only(helm.variant(variant), "NetworkPolicy"))
        assert rules == {
            # No namespaceSelector: pods of the policy's (the release's) namespace only.
            api: [{"podSelector": {}}],
            "ops": [{"podSelector": {}, "namespaceSelector": monitoring}],
        }, variant
    rules = ingress_rules(only(helm.variant("all-on"), "NetworkPolicy"))
    assert rules["interlink"][0]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "virtual-kubelet"}
    }
    assert rules["interlink"][1] == {"ipBlock": {"cidr": "10.0.0.0/24"}}
    assert rules["ops"][1] == {"namespaceSelector": monitoring}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_sidecar_warns_only_about_listeners_the_policy_guards(
    helm: Helm, variant: str, tmp_path: Path
) -> None:
    config = load_config(helm.variant(variant), tmp_path)
    keys = {line.split(":")[0] for line in insecure.findings(config)}
    tcp = any(a.kind is ListenKind.TCP for a in config.app.listen)
    # The kubelet probes the pod IP: the ops server cannot be on loopback in a pod.
    assert keys == {"app.ops_address"} | ({"app.socket_address"} if tcp else set())


def test_the_pods_own_namespace_is_refused_as_a_remote_namespace(
    helm: Helm, tmp_path: Path
) -> None:
    objects = helm.variant("default")
    env = {e["name"]: e for e in container(objects, "sidecar")["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # What the kubelet puts there: the release's namespace.
    config = load_config(objects, tmp_path, {"POD_NAMESPACE": NAMESPACE})
    for remote in (NAMESPACE, "kube-system", "kube-public", "kube-node-lease"):
        with pytest.raises(WireError, match=f"remote namespace '{remote}' is refused") as caught:
            check_remote_namespace(remote, local_namespace=remote, offloading=config.offloading)
        assert caught.value.status == 403
    check_remote_namespace("default", local_namespace="default", offloading=config.offloading)


def test_the_journal_is_on_a_claim_by_default(helm: Helm, tmp_path: Path) -> None:
    objects = helm.variant("default")
    config = load_config(objects, tmp_path)
    claim = only(objects, "PersistentVolumeClaim")
    assert volume(objects, "state") == {
        "name": "state",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    }
    mounts = {m["name"]: m for m in container(objects, "sidecar")["volumeMounts"]}
    assert mounts["state"]["mountPath"] == config.app.state_dir
    assert not mounts["state"].get("readOnly")
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }  # no storageClassName: the cluster's default class
    # One pod at a time holds the ReadWriteOnce claim.
    deployment = only(objects, "Deployment")["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"] == {"type": "Recreate"}

    existing = helm.variant("existing-claim")
    assert not by_kind(existing, "PersistentVolumeClaim")
    assert volume(existing, "state")["persistentVolumeClaim"] == {"claimName": "my-claim"}
    assert volume(helm.variant("opted-out"), "state")["emptyDir"] == {"sizeLimit": "64Mi"}
    no_class = only(helm.render((), ("state.storageClass=-",)), "PersistentVolumeClaim")
    assert no_class["spec"]["storageClassName"] == ""
    all_on = only(helm.variant("all-on"), "PersistentVolumeClaim")["spec"]
    assert all_on["storageClassName"] == "fast-ssd"
    assert all_on["resources"]["requests"]["storage"] == "2Gi"


def test_images_default_to_the_app_version(helm: Helm) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    image = container(helm.variant("default"), "sidecar")["image"]
    assert image == f"ghcr.io/interlink-hq/interlink-k8s-sidecar:{chart['appVersion']}"
    image = container(helm.variant("all-on"), "sidecar")["image"]
    assert image.endswith(":0.1.0@sha256:" + "0" * 64)


def test_checksums_roll_the_pod_when_config_or_secrets_change(helm: Helm) -> None:
    def annotations(*sets: str) -> dict[str, str]:
        objects = helm.render((), sets)
        found: dict[str, str] = only(objects, "Deployment")["spec"]["template"]["metadata"][
            "annotations"
        ]
        return found

    base = annotations()
    changed_config = annotations("config.log.level=DEBUG")
    changed_secret = annotations("remoteKubeconfig.kubeconfig=apiVersion: v1")
    assert changed_config["checksum/config"] != base["checksum/config"]
    assert changed_config["checksum/secret"] == base["checksum/secret"]
    assert changed_secret["checksum/secret"] != base["checksum/secret"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        # chart/values.schema.json: types, choices and typos, before any template runs.
        (("mode=both",), "at '/mode': value must be one of 'sidecar', 'deployment'"),
        (("plugin.port=http",), "at '/plugin/port'"),
        (("plugin.port=70000",), "at '/plugin/port'"),
        (("service.type=Internal",), "at '/service/type'"),
        (("image.pullPolicy=Sometimes",), "at '/image/pullPolicy'"),
        (("networkPolicy.enabled=yes",), "at '/networkPolicy/enabled'"),
        (("netwrokPolicy.enabled=false",), "netwrokPolicy"),
        (("state.accessModes={ReadWriteSometimes}",), "at '/state/accessModes/0'"),
        (("config.app.socket_port=5000",), "config.app.socket_port: not allowed here"),
        (("config.k8s.kubeconfig={}",), "config.k8s.kubeconfig: not allowed here: a credential"),
        (("config.tcp_tunnel.gateway_ssh_private_key=a2V5",), "use ssh.privateKey"),
        (("config.app.socket_mod=0660",), "config.app.socket_mod: unknown key"),
        (("config.appp.name=x",), "config.appp: unknown section"),
        (("config.app.socket_mode=432",), "config.app.socket_mode: quote it"),
        (("config.log.level=a\nb",), "config.log.level: must be one line"),
        (("config.tcp_tunnel.enabled=true",), "set ssh.privateKey or ssh.existingSecret"),
        (
            ("state.persistent=false", "state.existingClaim=x"),
            "state: existingClaim is set but persistent is false",
        ),
        (
            ("remoteKubeconfig.kubeconfig=x", "remoteKubeconfig.existingSecret=y"),
            "remoteKubeconfig: set kubeconfig or existingSecret, not both",
        ),
    ],
)
def test_wrong_values_are_refused_with_the_reason(
    helm: Helm, sets: tuple[str, ...], message: str
) -> None:
    assert message in helm.refuse(*sets)


def test_notes_say_how_to_connect_and_what_is_missing(helm: Helm, tmp_path: Path) -> None:
    # helm renders NOTES.txt only on install; render it as a template of a copy instead.
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "NOTES.txt").unlink()
    (copy / "templates" / "_notes.tpl").write_text(
        f'{{{{- define "test.notes" }}}}{notes}{{{{- end }}}}'
    )
    (copy / "templates" / "notes.yaml").write_text('notes: {{ include "test.notes" . | toJson }}\n')

    def render(*args: str) -> str:
        done = helm.run("template", RELEASE, str(copy), "-n", NAMESPACE,
                        "--show-only", "templates/notes.yaml", *args)  # fmt: skip
        assert done.returncode == 0, done.stderr
        text: str = yaml.safe_load(done.stdout)["notes"]
        return text

    default = render()
    assert "Sidecar mode (the recommended one)" in default
    assert 'InterlinkURL: "http://rel-interlink-k8s-sidecar.ns.svc"' in default
    assert "unix:///var/run/interlink/plugin.sock" in default
    assert "create secret generic rel-interlink-k8s-sidecar-remote-kubeconfig" in default
    assert "The NetworkPolicy rel-interlink-k8s-sidecar admits" in default
    assert "in the namespace ns" in default and "monitoring" in default
    assert (
        "journal (app.state_dir) lives on the PersistentVolumeClaim\nrel-interlink-k8s-sidecar-state"
        in default
    )
    assert "WARNING" not in default
    deployment = render("--set", "mode=deployment")
    assert 'SidecarURL: "http://rel-interlink-k8s-sidecar.ns.svc"' in deployment
    assert 'SidecarPort: "4000"' in deployment
    assert "admits to the plugin API port only" in deployment
    opted_out = render("--set", "state.persistent=false", "--set", "networkPolicy.enabled=false")
    assert "WARNING: state.persistent is false" in opted_out
    assert "LOST whenever the pod is replaced" in opted_out
    assert "WARNING: networkPolicy.enabled is false" in opted_out
    sidecar = render(
        "-f", str(ALL_ON), "--set", "config.tcp_tunnel.insecure_skip_host_key_check=true"
    )
    assert (
        'InterlinkPort: "3100"' in sidecar and "unix:///var/run/interlink/sidecar.sock" in sidecar
    )
    assert "create secret" not in sidecar
    assert "WARNING: config.tcp_tunnel.insecure_skip_host_key_check is on" in sidecar


# --- finding helm ---------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_helm_bin_is_used_as_is_or_refused_with_what_to_do(tmp_path: Path) -> None:
    binary = tmp_path / "helm"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert ensure_tool(HELM, environ={"HELM_BIN": str(binary)}) == binary
    with pytest.raises(ToolError, match=r"HELM_BIN=.* is not an executable file") as caught:
        ensure_tool(HELM, environ={"HELM_BIN": str(tmp_path / "missing")})
    assert "\n" not in str(caught.value)


@pytest.mark.timeout(30)
def test_missing_go_toolchain_says_what_to_do(tmp_path: Path) -> None:
    environ = {"XDG_CACHE_HOME": str(tmp_path), "PATH": str(tmp_path)}
    with pytest.raises(ToolError, match="'go' is not on PATH") as caught:
        ensure_tool(HELM, environ=environ)
    assert "HELM_BIN" in str(caught.value) and "\n" not in str(caught.value)
    assert (
        tool_directory(HELM, environ) == tmp_path / "interlink-k8s-sidecar" / "bin" / "helm-3.22.0"
    )
