"""The real node's configuration (pure: no processes, no host changes): when it is
wanted, and the containerd, CNI and kubelet settings that get it past this machine's
blockers (../shared/reference/real-node.md)."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.localcluster import pki
from tests.localcluster.binaries import LocalClusterError
from tests.localcluster.realnode import PAUSE_IMAGE, TAINT_KEY, node
from tests.localcluster.realnode.host import STATE_ROOT, Slot


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Pretend to be root with every tool present (a kubelet file in tmp_path)."""
    monkeypatch.setattr(node.os, "geteuid", lambda: 0)
    monkeypatch.setattr(node, "unavailable_reason", lambda kubelet, environ=None: None)
    kubelet = tmp_path / "kubelet"
    kubelet.write_text("")
    return kubelet


@pytest.mark.parametrize("value", ["", "0", "off", "false"])
def test_the_real_node_is_off_unless_asked_for(root: Path, value: str) -> None:
    want, why = node.wanted(root, {node.ENV: value})
    assert not want
    assert node.ENV in why and "auto" in why


def test_unset_is_off_too(root: Path) -> None:
    assert node.wanted(root, {}) == (
        False,
        f"off ({node.ENV} is unset; `make test` sets it to auto)",
    )


@pytest.mark.parametrize("value", ["1", "auto", "on"])
def test_asked_for_where_it_can_run_it_is_on(root: Path, value: str) -> None:
    assert node.wanted(root, {node.ENV: value})[0]


def test_auto_where_it_cannot_run_says_why_and_goes_on_without() -> None:
    want, why = node.wanted(None, {node.ENV: "auto"})
    assert not want
    assert why.startswith("unavailable here: ")


def test_required_where_it_cannot_run_is_an_error_with_the_reason() -> None:
    with pytest.raises(LocalClusterError, match=rf"{node.ENV}=1 but no real node can run here"):
        node.wanted(None, {node.ENV: "1"})


def test_a_value_it_does_not_know_is_an_error_naming_it() -> None:
    with pytest.raises(LocalClusterError, match=r"'maybe': expected 1, auto or 0"):
        node.wanted(None, {node.ENV: "maybe"})


def test_without_root_it_says_it_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.os, "geteuid", lambda: 1000)
    assert node.unavailable_reason(Path("/kubelet")) == (
        "needs root (containerd, runc, cgroups and network namespaces)"
    )


def test_the_toml_writer_round_trips_nested_tables_and_dotted_plugin_names() -> None:
    config: dict[str, Any] = {
        "version": 2,
        "root": "/x",
        "plugins": {"io.containerd.grpc.v1.cri": {"flag": True, "cni": {"bin_dir": "/b"}}},
    }
    assert tomllib.loads(node._toml(config)) == config


@pytest.fixture
def real_node(tmp_path: Path) -> tuple[node.RealNode, Slot]:
    pki.generate(tmp_path / "pki")

    def unused(*_args: object, **_kwargs: object) -> Any:
        raise AssertionError("no process or request in a configuration test")

    real = node.RealNode(
        tmp_path / "realnode",
        kubelet=tmp_path / "kubelet",
        pki_dir=tmp_path / "pki",
        server="https://127.0.0.1:6443",
        spawn=unused,
        wait=unused,
        request=unused,
        progress=lambda _line: None,
    )
    real.workdir.mkdir()
    return real, Slot(3, io.StringIO())


def test_containerd_gets_past_the_oom_score_blocker_and_keeps_its_files_in_our_trees(
    real_node: tuple[node.RealNode, Slot],
) -> None:
    real, slot = real_node
    config = tomllib.loads(real._containerd_config(slot).read_text())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == PAUSE_IMAGE  # no registry: the locally built pause
    assert cri["cni"]["conf_dir"] == str(real.workdir / "cni")
    assert config["root"].startswith(str(real.workdir))
    assert config["plugins"]["io.containerd.internal.v1.opt"]["path"].startswith(str(real.workdir))
    assert config["state"].startswith(str(STATE_ROOT / "slot-3"))
    assert len(config["grpc"]["address"]) < 108  # a unix socket path's limit


def test_the_cni_bridge_neither_forwards_nor_masquerades_and_uses_the_slot_subnet(
    real_node: tuple[node.RealNode, Slot],
) -> None:
    real, slot = real_node
    real._write_cni_config(slot)
    conflist = json.loads((real.workdir / "cni" / "10-interlink-realnode.conflist").read_text())
    bridge = conflist["plugins"][0]
    assert (bridge["bridge"], bridge["isGateway"], bridge["ipMasq"]) == ("ilsrn3", False, False)
    assert bridge["ipam"]["ranges"] == [
        [{"subnet": "10.213.3.0/24", "rangeStart": "10.213.3.10", "rangeEnd": "10.213.3.250"}]
    ]


def test_the_kubelet_runs_on_cgroup_v1_and_is_tainted_so_kwok_tests_never_land_on_it(
    real_node: tuple[node.RealNode, Slot],
) -> None:
    real, slot = real_node
    real.kubelet_port = 12345
    config = json.loads(real._kubelet_config(slot, healthz_port=23456).read_text())
    assert config["failCgroupV1"] is False
    assert config["protectKernelDefaults"] is False  # true: refuses to start here
    assert config["cgroupRoot"] == "/interlink-realnode-3"
    assert config["address"] == "10.213.3.1"  # not loopback: the kubelet refuses it
    assert config["registerWithTaints"] == [
        {"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}
    ]
    assert config["imageGCHighThresholdPercent"] == 100  # local images cannot be pulled back
    assert config["authentication"]["anonymous"] == {"enabled": False}
