"""The start-up warnings: one WARNING line per insecure setting, naming its key, never a
credential; none for a closed configuration."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar import insecure, settings

TOKEN = "s3cr3t-token-never-logged"
CLOSED = {"APP_SOCKET_ADDRESS": "unix:///run/plugin.sock"}


def kubeconfig(current: str = "remote", **clusters: dict[str, Any]) -> dict[str, Any]:
    clusters = clusters or {"remote": {"server": "https://remote.example:6443"}}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": c} for name, c in clusters.items()],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": "u"}} for name in clusters
        ],
        "current-context": current,
        "users": [{"name": "u", "user": {"token": TOKEN}}],
    }


def findings(tmp_path: Path, environ: dict[str, str], config: Any = None) -> list[str]:
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(config if config is not None else kubeconfig()))
    loaded = settings.load(None, {"K8S_KUBECONFIG_PATH": str(path), **CLOSED, **environ})
    lines = insecure.findings(loaded)
    assert not [line for line in lines if TOKEN in line]
    return lines


def test_a_closed_configuration_has_nothing_to_say(tmp_path: Path) -> None:
    assert findings(tmp_path, {}) == []
    loopback = {
        "APP_SOCKET_ADDRESS": "http://127.0.0.1,unix:///run/p.sock",
        "APP_SOCKET_PORT": "4000",
        "APP_OPS_ADDRESS": "localhost",
    }
    assert findings(tmp_path, loopback) == []
    v6 = {"APP_SOCKET_ADDRESS": "http://[::1]", "APP_SOCKET_PORT": "4000", "APP_OPS_ADDRESS": "::1"}
    assert findings(tmp_path, v6) == []


def test_tls_verification_off_in_the_client_configuration(tmp_path: Path) -> None:
    (line,) = findings(tmp_path, {"K8S_CLIENT_CONFIGURATION": '{"verify_ssl": false}'})
    assert line.startswith("k8s.client_configuration: verify_ssl is false: ")
    assert "certificate is not verified" in line


def test_tls_verification_off_in_the_kubeconfigs_current_cluster(tmp_path: Path) -> None:
    insecure_cluster = {"server": "https://r:6443", "insecure-skip-tls-verify": True}
    (line,) = findings(tmp_path, {}, kubeconfig(remote=insecure_cluster))
    assert line.startswith('k8s.kubeconfig_path: cluster "remote" has insecure-skip-tls-verify')
    # Another context's cluster is not the one the sidecar uses.
    other = kubeconfig("remote", remote={"server": "https://r:6443"}, lab=insecure_cluster)
    assert findings(tmp_path, {}, other) == []
    # client_configuration is applied after the kubeconfig: verify_ssl true wins.
    fixed = {"K8S_CLIENT_CONFIGURATION": '{"verify_ssl": true}'}
    assert findings(tmp_path, fixed, kubeconfig(remote=insecure_cluster)) == []


def test_the_inline_and_the_local_kubeconfig_are_checked_too(tmp_path: Path) -> None:
    bad = kubeconfig(remote={"server": "https://r:6443", "insecure-skip-tls-verify": True})
    inline = {"K8S_KUBECONFIG_PATH": str(tmp_path / "missing"), "K8S_KUBECONFIG": json.dumps(bad)}
    loaded = settings.load(None, {**CLOSED, **inline})
    (line,) = insecure.findings(loaded)
    assert line.startswith('k8s.kubeconfig: cluster "remote"')
    local = tmp_path / "local.yaml"
    local.write_text(yaml.safe_dump(bad))
    (line,) = findings(tmp_path, {"K8S_LOCAL_KUBECONFIG_PATH": str(local)})
    assert line.startswith('k8s.local_kubeconfig_path: cluster "remote"')


def test_plain_http_to_the_remote_api_server(tmp_path: Path) -> None:
    (line,) = findings(tmp_path, {}, kubeconfig(remote={"server": "http://r:8080"}))
    assert "plain http://" in line and line.startswith("k8s.kubeconfig_path:")
    (line,) = findings(tmp_path, {"K8S_CLIENT_CONFIGURATION": '{"host": "http://r:8080"}'})
    assert "plain http://" in line


def test_host_key_check_off_with_tunnels_on(tmp_path: Path) -> None:
    tunnel = {
        "TCP_TUNNEL_ENABLED": "true",
        "TCP_TUNNEL_GATEWAY_HOST": "gw",
        "TCP_TUNNEL_GATEWAY_PORT": "22",
        "TCP_TUNNEL_PRIVATE_KEY_FILE": "/k",
        "TCP_TUNNEL_INSECURE_SKIP_HOST_KEY_CHECK": "true",
    }
    (line,) = findings(tmp_path, tunnel)
    assert line.startswith("tcp_tunnel.insecure_skip_host_key_check is on")
    assert findings(tmp_path, {**tunnel, "TCP_TUNNEL_ENABLED": "false"}) == []


def test_listeners_beyond_loopback(tmp_path: Path) -> None:
    environ = {
        "APP_SOCKET_ADDRESS": "http://0.0.0.0",
        "APP_SOCKET_PORT": "4000",
        "APP_OPS_ADDRESS": "0.0.0.0",
    }
    plugin, ops = findings(tmp_path, environ)
    assert plugin.startswith("app.socket_address: the plugin API listens on http://0.0.0.0:4000")
    assert "no authentication" in plugin
    assert ops.startswith("app.ops_address: the ops server listens on 0.0.0.0")
    (line,) = findings(tmp_path, {"APP_SOCKET_MODE": "0666"})
    assert line.startswith("app.socket_mode: 0666 lets every local user connect")
    assert findings(tmp_path, {"APP_SOCKET_MODE": "0770"}) == []


def test_a_guard_that_admits_system_namespaces(tmp_path: Path) -> None:
    (line,) = findings(tmp_path, {"OFFLOADING_NAMESPACE_DENY": '["kube-system"]'})
    assert line.startswith("offloading.namespace_deny and namespace_allow admit kube-public, ")
    # An allow list that leaves them out closes them again.
    closed = {"OFFLOADING_NAMESPACE_DENY": "[]", "OFFLOADING_NAMESPACE_ALLOW": '["offloading-*"]'}
    assert findings(tmp_path, closed) == []


async def test_each_finding_is_one_warning_line_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {
        "APP_OPS_ADDRESS": "0.0.0.0",
        "K8S_CLIENT_CONFIGURATION": '{"verify_ssl": false}',
        "K8S_KUBECONFIG": json.dumps(kubeconfig()),
    }
    loaded = settings.load(None, {**CLOSED, **environ})
    with caplog.at_level(logging.WARNING, logger="sidecar.insecure"):
        await insecure.warn_at_start(loaded)
    records = [r for r in caplog.records if r.name == "sidecar.insecure"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    messages = [r.getMessage() for r in records]
    assert messages[0].startswith("insecure setting: k8s.client_configuration")
    assert messages[1].startswith("insecure setting: app.ops_address")
    assert not [m for m in messages if TOKEN in m or "\n" in m]
