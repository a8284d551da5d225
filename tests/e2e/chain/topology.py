"""The whole chain of the end-to-end tier, started in order and stopped by pid:

    kubectl -> LOCAL kube-apiserver -> virtual kubelet -> interLink API server
            -> sidecar (TCP or unix socket) -> REMOTE kube-apiserver -> kwok
                                                                   (or a real kubelet)

Two independent embedded clusters (``LocalCluster``): REMOTE, with kwok nodes (and a real
node when ``LOCAL_CLUSTER_REAL_NODE`` asks for one: see "Real node" below), where the
sidecar creates pods, and LOCAL, with no kwok node, where each virtual kubelet registers
its node. Three virtual nodes share the sidecar: ``vk-tcp`` (interLink reaches the sidecar
over TCP) and ``vk-unix`` (over its unix socket), on which every basic test runs, and
``vk-gated``, whose interLink reaches the sidecar's TCP listener through a ``CreateGate``
(``create_gate.py``: it can hold a ``/create`` or lose a ``/delete``), for the tests of
orderings and lost deletes. The sidecar reaps orphaned pods after a short window
(``ORPHAN_AFTER_SECONDS``), so that a lost delete is shown reaped within a test. Start
order: REMOTE, sidecar, LOCAL,
interLink API servers, virtual kubelets; a virtual node turns Ready after its first ping,
30 s after its start by design. ``start_chain`` stops whatever it started if a step fails
and raises ChainError with every log's tail.

Real node. When ``wanted(binaries.kubelet)`` says so (``LOCAL_CLUSTER_REAL_NODE``, as for
the integration tier's control plane; the "real node: ..." line is printed as progress),
REMOTE also gets a real node (kubelet + containerd + runc, tests/localcluster/realnode,
in a slot of its own next to any other real node on the host). It is labelled
``NODE_LABEL`` and tainted ``TAINT_KEY`` NoSchedule, so kwok-scripted pods never land on
it. To send a pod there through the chain, the virtual nodes of ``NODES`` are labelled
with that same ``NODE_LABEL`` on LOCAL (``REAL_NODE_LABELLED``). A pod then says, once:

    nodeSelector: {kubernetes.io/hostname: vk-tcp, interlink-sidecar.test/node: real}
    tolerations: [virtual-node.interlink/no-schedule, interlink-sidecar.test/real-node]

LOCAL schedules it on the virtual node (the only node with both labels; the second
toleration matches no taint there). The sidecar (sidecar/offload/scheduling.py) drops
what targets the virtual node (its hostname selector and its toleration) and keeps the
user's others, so the remote copy selects ``NODE_LABEL`` and tolerates ``TAINT_KEY``:
only the real node fits. Nothing in the sidecar's configuration changes, so every
other test's pods still go to kwok (an ``offloading.node_selector`` would have sent all
of them to the real node). The label survives the virtual kubelet: it updates its node
with a three-way patch from its last-applied metadata (the
``virtual-kubelet.io/last-applied-object-meta`` annotation), which removes only labels
it once set itself (the real-node tests check the label is still there before relying
on it). interLink's ``NodeLabels`` setting would do the same at registration, for every
node of the chain alike; a label added here exists only when there is a real node.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.chain.build import InterlinkBinaries
from tests.e2e.chain.create_gate import CreateGate
from tests.e2e.chain.interlink import (
    Transport,
    VirtualNode,
    listening,
    start_interlink,
    start_virtual_kubelet,
)
from tests.e2e.chain.processes import Child, stop_process, tail
from tests.e2e.deadlines import seconds
from tests.fixtures.sidecar_process import SidecarProcess, write_config
from tests.localcluster import Binaries, LocalCluster
from tests.localcluster.cluster import free_port
from tests.localcluster.realnode import NODE_LABEL, RealNode, wanted

NODES: dict[str, Transport] = {"vk-tcp": "tcp", "vk-unix": "unix"}
GATED_NODE = "vk-gated"
ALL_NODES = (*NODES, GATED_NODE)
REAL_NODE_LABELLED = tuple(NODES)
"""Virtual nodes labelled ``NODE_LABEL`` when REMOTE has a real node (not the gated one:
its create gate is for the tests of orderings)."""
ORPHAN_AFTER_SECONDS = 30
SIDECAR_EXTRA_CONFIG = f"orphan_policy = delete\norphan_after_seconds = {ORPHAN_AFTER_SECONDS}\n"
"""Lines of the sidecar's ``[offloading]`` section (tests/fixtures' config ends there)."""
REMOTE_KWOK_NODES = 2
# Base deadlines (scaled by TEST_TIMEOUT_SCALE, alias E2E_DEADLINE_SCALE).
CLUSTER_START_SECONDS = 180.0
SIDECAR_READY_SECONDS = 60.0
INTERLINK_LISTEN_SECONDS = 30.0
NODE_READY_SECONDS = 150.0


class ChainError(Exception):
    """The chain did not come up; the message holds the reason and the logs' tails."""


@dataclass
class Chain:
    workdir: Path
    remote: LocalCluster
    local: LocalCluster
    sidecar: SidecarProcess
    gate: CreateGate
    nodes: dict[str, VirtualNode] = field(default_factory=dict)
    real_node_why: str = "not asked for"
    """Why REMOTE has a real node or not (``wanted``'s line), for skip reasons."""

    @property
    def real_node(self) -> RealNode | None:
        """REMOTE's real node (None: REMOTE has kwok nodes only)."""
        return self.remote.real_node

    def children(self) -> list[Child]:
        return [child for node in self.nodes.values() for child in node.children]

    def diagnostics(self, lines: int = 25) -> str:
        """Every chain process's state and log tail, for failure messages."""
        parts = [child.describe(lines) for child in self.children()]
        code = self.sidecar.process.poll()
        state = "running" if code is None else f"exited with status {code}"
        parts.append(
            f"--- sidecar (pid {self.sidecar.process.pid}, {state}, log "
            f"{self.sidecar.log_path}):\n{tail(self.sidecar.log_path, lines)}"
        )
        parts.append(f"(cluster logs: {self.remote.workdir}/logs, {self.local.workdir}/logs)")
        return "\n".join(parts)

    def check_alive(self) -> None:
        """Raise ChainError if any chain process has exited."""
        dead = [child for child in self.children() if not child.alive()]
        if self.sidecar.process.poll() is not None or dead:
            raise ChainError(f"a chain process exited:\n{self.diagnostics()}")

    def stop(self) -> None:
        """Clients before servers: virtual kubelets, interLink, sidecar, LOCAL, REMOTE."""
        for node in self.nodes.values():
            node.stop()
        self.gate.stop()
        stop_process(self.sidecar.process, timeout=30)
        self.local.stop()
        self.remote.stop()


def _launch_sidecar(directory: Path, remote: LocalCluster) -> SidecarProcess:
    """The sidecar as a real process (tests/fixtures' config), listening on TCP and a unix
    socket, with PR_SET_PDEATHSIG like every other child of the chain."""
    directory.mkdir(parents=True, exist_ok=True)
    unix_path = directory / "sidecar.sock"
    tcp_port, ops_port = free_port(), free_port()
    config = write_config(
        directory / "sidecar.ini",
        remote,
        unix_path=unix_path,
        tcp_port=tcp_port,
        ops_port=ops_port,
        state_dir=directory / "sidecar-state",
        extra=SIDECAR_EXTRA_CONFIG,
    )
    env = {k: v for k, v in os.environ.items() if k != "CONFIG_FILE_PATH"}
    child = Child(
        "sidecar",
        [sys.executable, "-m", "sidecar", "--config", str(config)],
        log_path=directory / "sidecar.log",
        env=env,
        cwd=directory,
    )
    return SidecarProcess(
        child.process,
        f"http://127.0.0.1:{tcp_port}",
        unix_path,
        f"http://127.0.0.1:{ops_port}",
        child.log_path,
    )


def node_conditions(cluster: LocalCluster, name: str) -> dict[str, str]:
    """``{condition type: status}`` of node ``name`` ({} while it is not registered)."""
    try:
        node: dict[str, Any] = cluster.request("GET", f"/api/v1/nodes/{name}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {}
        raise
    conditions = (node.get("status") or {}).get("conditions") or []
    return {str(c.get("type")): str(c.get("status")) for c in conditions}


def start_chain(
    workdir: Path,
    cluster_binaries: Binaries,
    interlink_binaries: InterlinkBinaries,
    *,
    progress: Callable[[str], None] = lambda _line: None,
) -> Chain:
    """Start every piece in order; returns once every virtual node is Ready (and, with a
    real node, labelled for it). Raises LocalClusterError when ``LOCAL_CLUSTER_REAL_NODE``
    requires a real node that cannot run here."""
    started = time.monotonic()
    real_node, why = wanted(cluster_binaries.kubelet)
    progress(f"real node: {why}")
    remote = LocalCluster(
        workdir / "remote",
        cluster_binaries,
        nodes=REMOTE_KWOK_NODES,
        progress=lambda line: progress(f"REMOTE: {line}"),
        real_node=real_node,
    )
    local = LocalCluster(
        workdir / "local",
        cluster_binaries,
        nodes=0,
        progress=lambda line: progress(f"LOCAL: {line}"),
    )
    sidecar: SidecarProcess | None = None
    gate: CreateGate | None = None
    nodes: dict[str, VirtualNode] = {}
    interlinks: dict[str, tuple[Child, int]] = {}
    try:
        remote.start(timeout=seconds(CLUSTER_START_SECONDS))
        sidecar = _launch_sidecar(workdir / "sidecar", remote)
        local.start(timeout=seconds(CLUSTER_START_SECONDS))
        _wait_sidecar_ready(sidecar)
        gate = CreateGate(sidecar.tcp_url)
        gate.start()
        chain = Chain(workdir, remote, local, sidecar, gate, nodes, real_node_why=why)
        transports: dict[str, Transport] = {**NODES, GATED_NODE: "tcp"}
        for name, transport in transports.items():
            interlinks[name] = start_interlink(
                name,
                transport,
                binaries=interlink_binaries,
                sidecar=sidecar,
                workdir=workdir,
                via=gate.url if name == GATED_NODE else None,
            )
        _wait(
            "the interLink API servers to listen",
            lambda: all(listening(port) for _, port in interlinks.values()),
            chain,
            INTERLINK_LISTEN_SECONDS,
            extra=[child for child, _ in interlinks.values()],
        )
        for name, transport in transports.items():
            interlink, port = interlinks[name]
            vk, kubelet_port = start_virtual_kubelet(
                name, binaries=interlink_binaries, interlink_port=port, local=local, workdir=workdir
            )
            nodes[name] = VirtualNode(name, transport, interlink, vk, port, kubelet_port)
        progress(
            f"virtual kubelets started ({', '.join(ALL_NODES)}); waiting for their nodes to be "
            "Ready (the first ping comes 30 s after start)"
        )
        _wait(
            f"nodes {', '.join(ALL_NODES)} Ready on LOCAL",
            lambda: all(node_conditions(local, n).get("Ready") == "True" for n in ALL_NODES),
            chain,
            NODE_READY_SECONDS,
        )
        if remote.real_node is not None:
            for name in REAL_NODE_LABELLED:
                label_for_real_node(local, name)
            progress(f"{', '.join(REAL_NODE_LABELLED)} labelled {NODE_LABEL[0]}={NODE_LABEL[1]}")
    except BaseException:
        for node in nodes.values():
            node.stop()
        for child, _ in interlinks.values():
            child.stop()
        if gate is not None:
            gate.stop()
        if sidecar is not None:
            stop_process(sidecar.process)
        local.stop()
        remote.stop()
        raise
    progress(f"chain ready in {time.monotonic() - started:.0f} s")
    return chain


def label_for_real_node(local: LocalCluster, name: str) -> None:
    """Label virtual node ``name`` on LOCAL with the real node's ``NODE_LABEL`` (see the
    module docstring), unless it has it already."""
    if not has_real_node_label(local, name):
        key, value = NODE_LABEL
        local.request("PATCH", f"/api/v1/nodes/{name}", {"metadata": {"labels": {key: value}}})


def has_real_node_label(local: LocalCluster, name: str) -> bool:
    node: dict[str, Any] = local.request("GET", f"/api/v1/nodes/{name}")
    key, value = NODE_LABEL
    return bool(((node.get("metadata") or {}).get("labels") or {}).get(key) == value)


def _wait_sidecar_ready(sidecar: SidecarProcess) -> None:
    deadline = time.monotonic() + seconds(SIDECAR_READY_SECONDS)
    while True:
        if sidecar.process.poll() is not None:
            raise ChainError(
                f"the sidecar exited with status {sidecar.process.returncode}:\n"
                f"{tail(sidecar.log_path)}"
            )
        try:
            with urllib.request.urlopen(sidecar.ops_url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ChainError(f"the sidecar was not ready in time:\n{tail(sidecar.log_path)}")
        time.sleep(0.2)  # polling a condition with a deadline


def _wait(
    what: str,
    check: Callable[[], bool],
    chain: Chain,
    timeout: float,
    *,
    extra: list[Child] | None = None,
) -> None:
    deadline = time.monotonic() + seconds(timeout)
    while True:
        dead = [child for child in extra or [] if not child.alive()]
        if dead:
            report = "\n".join(child.describe() for child in dead)
            raise ChainError(f"while waiting for {what}, a process exited:\n{report}")
        chain.check_alive()
        try:
            if check():
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            states = {n: node_conditions(chain.local, n) for n in ALL_NODES}
            raise ChainError(
                f"timed out after {seconds(timeout):.0f} s waiting for {what} "
                f"(node conditions: {json.dumps(states)}):\n{chain.diagnostics()}"
            )
        time.sleep(0.5)  # polling a condition with a deadline
