"""Finding the control-plane binaries: one-line reasons that say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.localcluster.binaries import BIN_DIR_ENV, LocalClusterError, ensure_binaries


def test_incomplete_bin_dir_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "kube-apiserver").write_text("")
    with pytest.raises(LocalClusterError) as caught:
        ensure_binaries(environ={BIN_DIR_ENV: str(tmp_path)})
    message = str(caught.value)
    assert "kube-scheduler" in message and "kwok" in message
    assert "kube-apiserver," not in message
    assert "\n" not in message


def test_missing_go_toolchain_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LocalClusterError) as caught:
        ensure_binaries(environ={"XDG_CACHE_HOME": str(tmp_path), "PATH": str(tmp_path)})
    message = str(caught.value)
    assert "'go' is not on PATH" in message
    assert BIN_DIR_ENV in message
    assert "\n" not in message


def test_complete_bin_dir_is_used_as_is(tmp_path: Path) -> None:
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "etcd"):
        (tmp_path / name).write_text("")
    binaries = ensure_binaries(environ={BIN_DIR_ENV: str(tmp_path)})
    assert binaries.kwok == tmp_path / "kwok"
    assert binaries.etcd == tmp_path / "etcd"
    assert binaries.kubelet is None


def test_bin_dir_kubelet_is_picked_up_when_present(tmp_path: Path) -> None:
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "etcd"):
        (tmp_path / name).write_text("")
    (tmp_path / "kubelet").write_text("")
    assert ensure_binaries(environ={BIN_DIR_ENV: str(tmp_path)}).kubelet == tmp_path / "kubelet"
