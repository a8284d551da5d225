"""One virtual node: an interLink API server and a virtual kubelet, configured as in
shared/reference/interlink-chain.md, on free 127.0.0.1 ports.

The API server reaches the sidecar over TCP or its unix socket (``transport``); the
virtual kubelet registers node ``name`` on the LOCAL cluster with the admin kubeconfig
and serves its kubelet API (logs) on ``kubelet_port`` with a self-signed certificate
(``DisableCSR``: the embedded controller-manager signs no kubelet-serving CSRs).
Configs hold no secret: the kubeconfig is passed by path.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from tests.e2e.chain.build import InterlinkBinaries
from tests.e2e.chain.processes import Child
from tests.fixtures.sidecar_process import SidecarProcess
from tests.localcluster import LocalCluster
from tests.localcluster.cluster import free_port

Transport = Literal["tcp", "unix"]


@dataclass
class VirtualNode:
    name: str
    transport: Transport
    interlink: Child
    virtual_kubelet: Child
    interlink_port: int
    kubelet_port: int

    @property
    def children(self) -> tuple[Child, Child]:
        return (self.interlink, self.virtual_kubelet)

    def stop(self) -> None:
        """Virtual kubelet first (it calls interLink), then the API server."""
        self.virtual_kubelet.stop()
        self.interlink.stop()


def _sidecar_endpoint(sidecar: SidecarProcess, transport: Transport) -> dict[str, str]:
    if transport == "unix":
        # SidecarPort is ignored for unix:// but must parse.
        return {"SidecarURL": f"unix://{sidecar.unix_path}", "SidecarPort": "0"}
    return _http_endpoint(sidecar.tcp_url)


def _http_endpoint(url: str) -> dict[str, str]:
    host, _, port = url.rpartition(":")
    return {"SidecarURL": host, "SidecarPort": port}


def _write_yaml(path: Path, content: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def start_interlink(
    name: str,
    transport: Transport,
    *,
    binaries: InterlinkBinaries,
    sidecar: SidecarProcess,
    workdir: Path,
    via: str | None = None,
) -> tuple[Child, int]:
    """Start the interLink API server of node ``name``; does not wait. ``via``: an
    ``http://127.0.0.1:<port>`` hop between interLink and the sidecar's TCP listener."""
    directory = workdir / name
    (directory / "data").mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = _write_yaml(
        directory / "interlink.yaml",
        {
            "InterlinkAddress": "http://127.0.0.1",
            "InterlinkPort": str(port),
            **(_http_endpoint(via) if via else _sidecar_endpoint(sidecar, transport)),
            "VerboseLogging": True,
            "ErrorsOnlyLogging": False,
            "DataRootFolder": f"{directory / 'data'}/",
        },
    )
    env = _base_env() | {"INTERLINKCONFIGPATH": str(config)}
    child = Child(
        f"interlink[{name}]",
        [str(binaries.interlink)],
        log_path=directory / "interlink.log",
        env=env,
        cwd=directory,
    )
    return child, port


def start_virtual_kubelet(
    name: str,
    *,
    binaries: InterlinkBinaries,
    interlink_port: int,
    local: LocalCluster,
    workdir: Path,
) -> tuple[Child, int]:
    """Start the virtual kubelet of node ``name`` against interLink on ``interlink_port``."""
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    kubelet_port = free_port()
    config = _write_yaml(
        directory / "virtual-kubelet.yaml",
        {
            "InterlinkURL": "http://127.0.0.1",
            "InterlinkPort": str(interlink_port),
            "VerboseLogging": True,
            "ErrorsOnlyLogging": False,
            "ServiceAccount": "virtual-kubelet",
            "Namespace": "interlink",
            "VKTokenFile": "",
            "DisableCSR": True,
            "Resources": {"CPU": "100", "Memory": "128Gi", "Pods": "100"},
            "HTTP": {"Insecure": True},
            "KubeletHTTP": {"Insecure": True},
        },
    )
    env = _base_env() | {
        "CONFIGPATH": str(config),
        "NODENAME": name,
        "KUBECONFIG": str(local.kubeconfig),
        "POD_IP": "127.0.0.1",
        "KUBELET_URL": "127.0.0.1",
        "KUBELET_PORT": str(kubelet_port),
    }
    child = Child(
        f"virtual-kubelet[{name}]",
        [str(binaries.virtual_kubelet)],
        log_path=directory / "virtual-kubelet.log",
        env=env,
        cwd=directory,
    )
    return child, kubelet_port


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _base_env() -> dict[str, str]:
    """The test process's environment without what would redirect the Go programs
    (their own config variables, proxies for 127.0.0.1, tracing, pprof)."""
    drop = {
        "KUBECONFIG",
        "CONFIGPATH",
        "NODENAME",
        "INTERLINKCONFIGPATH",
        "INTERLINKURL",
        "INTERLINKPORT",
        "SIDECARURL",
        "SIDECARPORT",
        "ENABLE_TRACING",
        "ENABLE_PPROF",
        "PPROF_PORT",
        "PPROF_ADDRESS",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    }
    return {k: v for k, v in os.environ.items() if k not in drop}
