"""Settings: upstream keys, SECTION_KEY overrides, and every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar import settings
from sidecar.settings import ListenKind, SettingsError

MINIMAL = "[app]\nsocket_address = unix:///tmp/plugin.sock\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.ini"
    path.write_text(text)
    return path


def test_upstream_sample_keys_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[app]
name = interlink-kubernetes-plugin
description = Offloading
version = dev
api_versions = v1
api_docs_path = /docs
socket_address = unix:///var/run/.plugin.sock
socket_port = 0
[log]
level = DEBUG
rich_enabled = True
requests_enabled = False
[k8s]
kubeconfig_path = private/k8s/kubeconfig.yaml
[offloading]
namespace_prefix = offloading
namespace_prefix_exclusions = ["kube-system"]
node_selector = {"nvidia/gpu-model": "T4"}
node_tolerations = [{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}]
[mesh]
init_container = True
startup_probe = True
slurm_setup_script = False
[tcp_tunnel]
enabled = False
bastion_namespace = tcp-tunnel
bastion_chart_path = infr/charts/tcp-tunnel/charts/bastion
gateway_host =
gateway_port =
gateway_ssh_private_key =
""".replace("gateway_port =\n", "gateway_port = 0\n"),
    )
    loaded = settings.load(path, {})
    assert loaded.app.listen[0].kind is ListenKind.UNIX
    assert loaded.app.listen[0].path == "/var/run/.plugin.sock"
    assert loaded.log.level == "DEBUG"
    assert loaded.offloading.namespace_prefix_exclusions == ("kube-system",)
    assert dict(loaded.offloading.node_selector) == {"nvidia/gpu-model": "T4"}
    assert loaded.offloading.node_tolerations[0]["operator"] == "Exists"
    assert "app.api_versions" in loaded.ignored_keys


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[log]\nlevel = DEBUG\n")
    loaded = settings.load(
        path,
        {"LOG_LEVEL": "warning", "APP_SOCKET_ADDRESS": "http://0.0.0.0", "APP_SOCKET_PORT": "4000"},
    )
    assert loaded.log.level == "WARNING"
    assert loaded.app.listen[0].url == "http://0.0.0.0:4000"


def test_unix_and_tcp_together(tmp_path: Path) -> None:
    loaded = settings.load(
        None,
        {"APP_SOCKET_ADDRESS": "unix:///run/p.sock, http://127.0.0.1", "APP_SOCKET_PORT": "4000"},
    )
    assert [a.url for a in loaded.app.listen] == ["unix:///run/p.sock", "http://127.0.0.1:4000"]


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[app]
socket_address = https://plugin.example
socket_port = forty
[offloading]
node_selector = {"broken json"
colour = blue
""",
    )
    with pytest.raises(SettingsError) as caught:
        settings.load(path, {"LOG_LEVEL": "chatty"})
    text = "\n".join(caught.value.problems)
    assert "app.socket_address" in text and "http:// or unix://" in text
    assert "app.socket_port" in text and "forty" in text
    assert "offloading.node_selector" in text and "invalid JSON" in text
    assert "offloading.colour: unknown key" in text
    assert "log.level (from $LOG_LEVEL)" in text
    assert len(caught.value.problems) == 5


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://127.0.0.1:4000", "put the port in app.socket_port"),
        ("unix://relative.sock", "absolute path"),
        ("tcp://127.0.0.1", "expected unix:///path or http://host"),
    ],
)
def test_socket_address_mistakes(address: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings.load(None, {"APP_SOCKET_ADDRESS": address, "APP_SOCKET_PORT": "4000"})
    assert message in str(caught.value)


def test_tcp_needs_a_port() -> None:
    with pytest.raises(SettingsError, match=r"app.socket_port: must be > 0"):
        settings.load(None, {"APP_SOCKET_ADDRESS": "http://127.0.0.1"})


def test_socket_address_is_required() -> None:
    with pytest.raises(SettingsError, match=r"app.socket_address: required"):
        settings.load(None, {})


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        settings.load(tmp_path / "missing.ini", {"APP_SOCKET_ADDRESS": "unix:///x.sock"})


def test_private_key_never_in_repr() -> None:
    loaded = settings.load(
        None,
        {"APP_SOCKET_ADDRESS": "unix:///x.sock", "TCP_TUNNEL_GATEWAY_SSH_PRIVATE_KEY": "c2VjcmV0"},
    )
    assert loaded.tcp_tunnel.gateway_ssh_private_key == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(loaded)


def test_settings_are_frozen() -> None:
    loaded = settings.load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock"})
    with pytest.raises(AttributeError):
        loaded.app.name = "other"  # type: ignore[misc]


def test_snake_case_tolerations_from_upstream_still_work() -> None:
    loaded = settings.load(
        None,
        {
            "APP_SOCKET_ADDRESS": "unix:///x.sock",
            "OFFLOADING_NODE_TOLERATIONS": '[{"key": "k", "operator": "Exists", "toleration_seconds": 5}]',
        },
    )
    assert loaded.offloading.node_tolerations[0]["tolerationSeconds"] == 5


def test_client_configuration_rejects_unknown_attributes() -> None:
    with pytest.raises(SettingsError, match=r"k8s.client_configuration.*verify_sll"):
        settings.load(
            None,
            {
                "APP_SOCKET_ADDRESS": "unix:///x.sock",
                "K8S_CLIENT_CONFIGURATION": '{"verify_sll": false}',
            },
        )


def test_tunnel_enabled_needs_a_gateway() -> None:
    with pytest.raises(SettingsError, match=r"tcp_tunnel.gateway_host: required"):
        settings.load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", "TCP_TUNNEL_ENABLED": "true"})


def test_tunnel_ciphers_prefer_aes_gcm_and_reject_unknown_names() -> None:
    loaded = settings.load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock"})
    assert loaded.tcp_tunnel.ciphers[0] == "aes256-gcm@openssh.com"
    with pytest.raises(SettingsError, match=r"tcp_tunnel.ciphers.*unknown: arcfour, rot13"):
        settings.load(
            None,
            {
                "APP_SOCKET_ADDRESS": "unix:///x.sock",
                "TCP_TUNNEL_CIPHERS": "aes128-ctr,arcfour,rot13",
            },
        )


def test_namespace_guard_defaults_deny_the_system_namespaces() -> None:
    loaded = settings.load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock"})
    assert loaded.offloading.namespace_deny == ("kube-system", "kube-public", "kube-node-lease")
    assert loaded.offloading.namespace_allow == ()
    assert loaded.offloading.own_namespace == ""


def test_namespace_lists_take_names_and_prefix_patterns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL + '[offloading]\nnamespace_deny = ["kube-*", "team-a"]\n'
        'namespace_allow = ["offloading-*", "*"]\n',
    )
    loaded = settings.load(path, {"POD_NAMESPACE": "interlink"})
    assert loaded.offloading.namespace_deny == ("kube-*", "team-a")
    assert loaded.offloading.namespace_allow == ("offloading-*", "*")
    assert loaded.offloading.own_namespace == "interlink"
    emptied = settings.load(path, {"OFFLOADING_NAMESPACE_DENY": "[]"})
    assert emptied.offloading.namespace_deny == ()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OFFLOADING_NAMESPACE_DENY": '"kube-system"'}, "offloading.namespace_deny (from"),
        ({"OFFLOADING_NAMESPACE_DENY": '["Kube-System"]'}, "'Kube-System' is neither"),
        ({"OFFLOADING_NAMESPACE_ALLOW": '["team-*-dev"]'}, "offloading.namespace_allow"),
        ({"OFFLOADING_NAMESPACE_ALLOW": '["' + "a" * 64 + '"]'}, "is neither a namespace"),
        ({"POD_NAMESPACE": "not a namespace"}, "$POD_NAMESPACE: 'not a namespace'"),
    ],
)
def test_namespace_guard_mistakes_name_the_key(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings.load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", **environ})
    assert message in str(caught.value)
    assert len(caught.value.problems) == 1
