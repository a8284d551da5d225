"""A real node for the local cluster: containerd (runc, CNI bridge) and a kubelet, so
remote pods really run: exit codes, restarts, CRI log files, probes and pod IPs are the
kubelet's, not kwok's script.

What got past each blocker of this kind of machine is in
``../shared/reference/real-node.md``; the comments below say which line of the
configuration answers which. Every host change goes through the slot's ledger first
(``host.py``), so ``release()`` and a start after a crash put the host back.

Contract: ``start()`` returns once the Node is Ready (or raises LocalClusterError with
the reason and the log to read, having released what it took); the caller stops the two
processes (they were spawned through its ``spawn``) and then calls ``release()``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.localcluster import pki
from tests.localcluster.binaries import LocalClusterError, cache_root
from tests.localcluster.realnode import images
from tests.localcluster.realnode.host import Slot
from tests.localcluster.realnode.hostops import CGROUP_FS

NODE_NAME = "real-node"
NODE_LABEL = ("interlink-sidecar.test/node", "real")
"""Pods meant for the real node select it by this label (``nodeSelector``)."""
TAINT_KEY = "interlink-sidecar.test/real-node"
"""The real node is tainted NoSchedule with this key: pods of other tests (made for
kwok's scripted behaviour) never land on it; real-node pods tolerate it."""
PACKAGES = ("containerd", "runc", "containernetworking-plugins", "busybox-static")
CNI_BIN_DIR = Path("/usr/lib/cni")
BUSYBOX = Path("/bin/busybox")
_TOOLS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "ip": "iproute2",
    "gcc": "gcc",
}
_CNI_PLUGINS = ("bridge", "host-local", "loopback")
# The kubelet creates its cgroups in every one of these v1 hierarchies and checks that
# cgroupRoot exists in them first.
_V1_CONTROLLERS_NEEDED = ("cpu", "cpuacct", "cpuset", "memory", "pids", "systemd")
_SOCKET_PATH_MAX = 107
"""sun_path holds 108 bytes with the terminating NUL."""
ENV = "LOCAL_CLUSTER_REAL_NODE"
"""``1``: a real node is required (no start without one); ``auto``: added where it can
run (``make test``); unset, empty or ``0``: none."""


def toleration() -> dict[str, str]:
    return {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def unavailable_reason(kubelet: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why a real node cannot run here (None: it can): root, the kubelet binary, the
    Debian packages, cgroups."""
    if os.geteuid() != 0:
        return "needs root (containerd, runc, cgroups and network namespaces)"
    if kubelet is None:
        return "no kubelet binary (the LOCAL_CLUSTER_BIN_DIR in use has none)"
    missing = sorted(
        {pkg for tool, pkg in _TOOLS.items() if shutil.which(tool, path=_path(environ)) is None}
        | ({"busybox-static"} if not BUSYBOX.is_file() else set())
        | (
            {"containernetworking-plugins"}
            if not all((CNI_BIN_DIR / p).is_file() for p in _CNI_PLUGINS)
            else set()
        )
    )
    if missing:
        return (
            f"missing Debian packages {', '.join(missing)} (apt-get install -y {' '.join(missing)})"
        )
    if not (CGROUP_FS.is_dir() and any(CGROUP_FS.iterdir())):
        return f"no cgroup file system at {CGROUP_FS}"
    return None


def wanted(kubelet: Path | None, environ: Mapping[str, str] = os.environ) -> tuple[bool, str]:
    """Whether to add a real node per ``$LOCAL_CLUSTER_REAL_NODE``, and a line saying why
    (or why not). Raises LocalClusterError when it is required and cannot run."""
    mode = environ.get(ENV, "").strip().lower()
    if mode in ("", "0", "off", "no", "false"):
        return False, f"off ({ENV} is {mode or 'unset'}; `make test` sets it to auto)"
    if mode not in ("1", "on", "yes", "true", "auto"):
        raise LocalClusterError(f"{ENV}={mode!r}: expected 1, auto or 0")
    reason = unavailable_reason(kubelet, environ)
    if reason is None:
        return True, f"on ({ENV}={mode})"
    if mode == "auto":
        return False, f"unavailable here: {reason}"
    raise LocalClusterError(f"{ENV}={mode} but no real node can run here: {reason}")


def _path(environ: Mapping[str, str]) -> str:
    # root's tools live in sbin directories that a user's PATH may lack
    return environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin"


class RealNode:
    """One kubelet + containerd, registered as ``NODE_NAME`` in the cluster at ``server``."""

    def __init__(
        self,
        workdir: Path,
        *,
        kubelet: Path,
        pki_dir: Path,
        server: str,
        spawn: Callable[[str, list[str]], None],
        wait: Callable[[str, Callable[[], bool], float], None],
        request: Callable[..., Any],
        progress: Callable[[str], None],
    ) -> None:
        self.workdir = workdir
        self._kubelet = kubelet
        self._pki = pki_dir
        self._server = server
        self._spawn = spawn
        self._wait = wait
        self._request = request
        self._progress = progress
        self.slot: Slot | None = None
        self.kubelet_port = 0

    @property
    def node_ip(self) -> str:
        assert self.slot is not None
        return self.slot.node_ip

    @property
    def pod_logs_dir(self) -> Path:
        return self.workdir / "pod-logs"

    def start(self, *, deadline: float, free_port: Callable[[], int]) -> None:
        started = time.monotonic()
        longest = self.workdir / "kubelet" / "pod-resources" / "kubelet.sock"
        if len(str(longest)) > _SOCKET_PATH_MAX:
            raise LocalClusterError(
                f"real node: {self.workdir} is too long for the kubelet's unix sockets "
                f"({longest} is over {_SOCKET_PATH_MAX} bytes): use a shorter --dir"
            )
        self.slot = slot = Slot.acquire()
        slot.record_tree(self.workdir)
        slot.record_tree(slot.state_dir)
        slot.record_processes(str(slot.containerd_socket))
        slot.record_log_links(self.pod_logs_dir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        slot.state_dir.mkdir(parents=True, exist_ok=True)
        archives = images.ensure_images(cache_root() / "images", progress=self._progress)
        self._make_bridge(slot)
        self._make_cgroup_root(slot)
        self._progress(f"real node: starting containerd ({slot.containerd_socket})")
        self._spawn("containerd", ["containerd", "--config", str(self._containerd_config(slot))])
        self._wait(
            "containerd to answer",
            lambda: _ctr(slot, "version").returncode == 0,
            deadline,
        )
        images.import_images(archives, address=slot.containerd_socket)
        self._write_cni_config(slot)
        self.kubelet_port = free_port()
        kubelet_config = self._kubelet_config(slot, healthz_port=free_port())
        self._progress(f"real node: starting the kubelet ({NODE_NAME} on {slot.node_ip})")
        self._spawn(
            "kubelet",
            [
                str(self._kubelet),
                f"--config={kubelet_config}",
                f"--kubeconfig={self._kubelet_kubeconfig()}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={slot.node_ip}",
                f"--root-dir={self.workdir / 'kubelet'}",
                f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]}",
                "--v=2",
            ],
        )
        self._wait("the real node to be Ready", self._ready, deadline)
        self._progress(f"real node Ready in {time.monotonic() - started:.1f} s")

    def release(self) -> None:
        """Undo every host change (call after the kubelet and containerd are stopped)."""
        if self.slot is not None:
            self.slot.release()
            self.slot = None

    # --- host network and cgroups --------------------------------------------------------

    def _make_bridge(self, slot: Slot) -> None:
        """The kubelet refuses a loopback node IP: the node lives on a host-only bridge
        with a private /24 (no forwarding, no NAT: nothing leaves the machine)."""
        taken = subprocess.run(
            ["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=False
        )
        subnet = ipaddress.ip_network(slot.subnet)
        for link in json.loads(taken.stdout or "[]"):
            for address in link.get("addr_info") or []:
                if ipaddress.ip_address(address.get("local", "0.0.0.0")) in subnet:
                    raise LocalClusterError(
                        f"real node: {slot.subnet} is already used by {link.get('ifname')} "
                        "on this host"
                    )
        slot.record_bridge()
        for argv in (
            ["ip", "link", "add", slot.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{slot.node_ip}/24", "dev", slot.bridge],
            ["ip", "link", "set", slot.bridge, "up"],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise LocalClusterError(f"real node: {' '.join(argv)}: {done.stderr.strip()}")

    def _make_cgroup_root(self, slot: Slot) -> None:
        """``cgroupRoot`` must exist in every hierarchy the kubelet uses; a new cpuset
        cgroup has no CPUs or memory nodes until given its parent's."""
        slot.record_cgroup_root()
        unified = (CGROUP_FS / "cgroup.controllers").is_file()
        hierarchies = (
            [CGROUP_FS]
            if unified
            else [h for h in sorted(CGROUP_FS.iterdir()) if h.is_dir() and not h.is_symlink()]
        )
        if not unified:
            absent = [c for c in _V1_CONTROLLERS_NEEDED if not (CGROUP_FS / c).is_dir()]
            if absent:
                raise LocalClusterError(f"real node: cgroup v1 hierarchies missing: {absent}")
        for hierarchy in hierarchies:
            directory = hierarchy / slot.cgroup_root.lstrip("/")
            directory.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (directory / name).exists() and not (directory / name).read_text().strip():
                    (directory / name).write_text((hierarchy / name).read_text())

    # --- containerd ----------------------------------------------------------------------

    def _containerd_config(self, slot: Slot) -> Path:
        cri = {
            "sandbox_image": images.PAUSE_IMAGE,
            # Root here lacks CAP_SYS_RESOURCE: runc cannot set the sandbox's
            # oom_score_adj of -998 ("nsexec: failed to update /proc/self/oom_score_adj");
            # this clamps scores to containerd's own.
            "restrict_oom_score_adj": True,
            "disable_apparmor": True,
            "enable_selinux": False,
            # exec/attach/port-forward streams (the kubelet proxies to them)
            "stream_server_address": "127.0.0.1",
            "stream_server_port": "0",
            "cni": {"bin_dir": str(CNI_BIN_DIR), "conf_dir": str(self.workdir / "cni")},
            "containerd": {
                "snapshotter": "overlayfs",
                "default_runtime_name": "runc",
                "runtimes": {
                    "runc": {
                        "runtime_type": "io.containerd.runc.v2",
                        "options": {"SystemdCgroup": False},
                    }
                },
            },
        }
        config = {
            "version": 2,
            "root": str(self.workdir / "containerd"),
            "state": str(slot.state_dir / "containerd"),
            "grpc": {"address": str(slot.containerd_socket)},
            "ttrpc": {"address": str(slot.state_dir / "containerd-ttrpc.sock")},
            "plugins": {
                "io.containerd.grpc.v1.cri": cri,
                # default /opt/containerd: keep it in our tree
                "io.containerd.internal.v1.opt": {"path": str(self.workdir / "opt")},
            },
        }
        path = self.workdir / "containerd.toml"
        path.write_text(_toml(config))
        return path

    def _write_cni_config(self, slot: Slot) -> None:
        first, last = slot.pod_range
        conflist = {
            "cniVersion": "0.4.0",
            "name": f"interlink-realnode-{slot.number}",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": slot.bridge,
                    # No gateway, no masquerade: nothing turns on ip_forward or adds NAT
                    # rules; the host reaches pods over the bridge it already has an
                    # address on.
                    "isGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [
                            [{"subnet": slot.subnet, "rangeStart": first, "rangeEnd": last}]
                        ],
                        "dataDir": str(self.workdir / "cni-ipam"),
                    },
                }
            ],
        }
        directory = self.workdir / "cni"
        directory.mkdir(exist_ok=True)
        (directory / "10-interlink-realnode.conflist").write_text(json.dumps(conflist, indent=1))

    # --- kubelet -------------------------------------------------------------------------

    def _kubelet_kubeconfig(self) -> Path:
        """Client cert ``system:node:<name>`` in ``system:nodes``: the Node authorizer
        lets the kubelet read and write what belongs to its node."""
        cert, key = pki.issue(
            self._pki,
            "kubelet-client",
            common_name=f"system:node:{NODE_NAME}",
            organizations=("system:nodes",),
        )
        return pki.write_kubeconfig(
            self.workdir / "kubelet.kubeconfig",
            server=self._server,
            ca_cert=self._pki / "ca.crt",
            user="kubelet",
            credentials={"client-certificate": str(cert), "client-key": str(key)},
        )

    def _kubelet_config(self, slot: Slot, *, healthz_port: int) -> Path:
        serving_cert, serving_key = pki.issue(
            self._pki,
            "kubelet-serving",
            common_name=NODE_NAME,
            dns_names=(NODE_NAME,),
            ips=(slot.node_ip,),
            server=True,
        )
        resolv = self.workdir / "resolv.conf"
        resolv.write_text("search local\nnameserver 127.0.0.1\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": slot.node_ip,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            "tlsCertFile": str(serving_cert),
            "tlsPrivateKeyFile": str(serving_key),
            # Callers (the API server's kubelet client) show a cert of the cluster CA;
            # what they may do is asked of the API server (SubjectAccessReview).
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self._pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{slot.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": slot.cgroup_root,
            # kubelet 1.35 refuses cgroup v1 unless told (then: a deprecation warning)
            "failCgroupV1": False,
            "failSwapOn": False,
            # it writes vm.overcommit_memory, kernel.panic(_on_oops) (recorded and
            # restored by the slot); ``true`` would make it refuse to start instead
            "protectKernelDefaults": False,
            "podLogsDir": str(self.pod_logs_dir),
            "resolvConf": str(resolv),
            "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
            # A test machine's disk or memory is not the node's to protect: never evict
            # test pods, never garbage-collect the locally built images (no registry to
            # pull them back from).
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "maxPods": 30,
            "serializeImagePulls": False,
            "staticPodPath": "",
            # no KUBE-FIREWALL / canary chains: nothing here needs them (no kube-proxy)
            "makeIPTablesUtilChains": False,
            "nodeStatusUpdateFrequency": "2s",
            "nodeStatusReportFrequency": "10s",
        }
        path = self.workdir / "kubelet-config.json"
        path.write_text(json.dumps(config, indent=1))
        return path

    def _ready(self) -> bool:
        node = self._request("GET", f"/api/v1/nodes/{NODE_NAME}")
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _ctr(slot: Slot, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ctr", "--address", str(slot.containerd_socket), *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def _toml(config: Mapping[str, Any], prefix: str = "") -> str:
    """The TOML of nested string/bool/int tables (enough for containerd's config)."""
    lines, tables = [], []
    for key, value in config.items():
        name = f'"{key}"' if "." in key else key
        if isinstance(value, Mapping):
            tables.append(_toml(value, f"{prefix}.{name}" if prefix else name))
        else:
            lines.append(f"{name} = {json.dumps(value)}")
    head = [f"[{prefix}]"] if prefix and lines else []
    return "\n".join([*head, *lines, *tables]) + "\n"
