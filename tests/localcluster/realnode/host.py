"""What a real node changes on the host, written down before it happens and undone after.

A kubelet with containerd is not a process that cleans up after itself: it writes three
sysctls and adds iptables chains at every start, containerd's shims and the containers
outlive both, and the pods leave overlay, shm, tmpfs and network-namespace mounts,
cgroups, veths on a bridge, log links in ``/var/log/containers``, runc state and shim
sockets in ``/run/containerd``, libcni's cache and directories that did not exist
before. Tests run on developers' machines, so every one of those changes is recorded in
a ledger *before* it is made and undone at stop, and a start after a crash (ledger left
behind, its slot lock free) first undoes what the crashed run left.

Up to ``SLOTS`` real nodes can live on one host at once (the integration tier's cluster
and the end-to-end tier's remote cluster, plus a ``make run``). Each takes a slot, held
by an ``flock`` for its whole life, and owns the slot's bridge, subnet, cgroup root and
state directory. What all slots share (the kubelet's sysctls and iptables chains,
directories containerd and the kubelet create at fixed paths) is recorded by the first
slot in ``host.json`` and restored by the last one to go; each slot removes its own
containers' entries in those directories itself.

Contract: ``Slot.acquire()`` returns a slot whose leftovers are cleaned, or raises
LocalClusterError when all are taken; ``Slot.record_*`` persist the entry before the
caller changes the host; ``Slot.release()`` undoes the slot's entries (and the shared
ones if no other slot is alive), never raises for a change already undone, and may be
called again after a partial failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tests.localcluster.binaries import LocalClusterError
from tests.localcluster.realnode import hostops
from tests.localcluster.realnode.hostops import NETNS_DIR

STATE_ROOT = Path("/run/interlink-k8s-sidecar-realnode")
"""Ledgers, locks, containerd's state and sockets (short paths: a unix socket path has
at most 107 bytes)."""
SLOTS = 8
CONTAINER_LOG_LINKS = Path("/var/log/containers")
"""Fixed in the kubelet: one symlink per container into its pod log directory."""
KUBELET_SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
"""What the kubelet writes at every start (``protectKernelDefaults: false``; with
``true`` it refuses to start when they differ instead)."""
SHARED_PATHS = (
    Path("/run/containerd"),  # containerd 1.6 puts shim sockets (s/) and fifos here, always
    NETNS_DIR,  # the CNI network namespaces of every sandbox
    CONTAINER_LOG_LINKS,
    Path("/var/lib/cni"),  # libcni's result cache
    Path("/opt/containerd"),  # containerd's opt plugin, if a config forgets its path
    # fixed in the kubelet whatever its --root-dir: device-plugins/kubelet.sock
    Path("/var/lib/kubelet"),
)
CONTAINERD_RUN = Path("/run/containerd")
"""Fixed in containerd 1.6 whatever its ``state``: its shims' sockets (``s/<sha256>``) and
runc's state (``runc/<namespace>/<container id>``). Shared by every slot, so each slot
removes its own containers' entries (another slot or a system containerd may keep the
directory)."""
CNI_CACHE = Path("/var/lib/cni/results")
"""libcni's result cache: ``<network>-<sandbox id>-<interface>`` per attachment."""


def bridge_name(slot: int) -> str:
    return f"ilsrn{slot}"


def _subnet_prefix(slot: int) -> str:
    return f"10.213.{slot}"


def cgroup_root_path(slot: int) -> str:
    return f"/interlink-realnode-{slot}"


def _state_dir(slot: int) -> Path:
    return STATE_ROOT / f"slot-{slot}"


def _ledger_path(slot: int) -> Path:
    return STATE_ROOT / f"slot-{slot}.json"


def _containerd_socket(slot: int) -> Path:
    return _state_dir(slot) / "containerd.sock"


@dataclass
class Slot:
    """One real node's share of the host: bridge, subnet, cgroup root, state directory."""

    number: int
    lock: TextIO
    entries: list[dict[str, Any]] = field(default_factory=list)

    # --- names ---------------------------------------------------------------------------

    @property
    def bridge(self) -> str:
        return bridge_name(self.number)

    @property
    def node_ip(self) -> str:
        """The host's address on the bridge: the kubelet listens and registers here."""
        return f"{_subnet_prefix(self.number)}.1"

    @property
    def subnet(self) -> str:
        return f"{_subnet_prefix(self.number)}.0/24"

    @property
    def pod_range(self) -> tuple[str, str]:
        return f"{_subnet_prefix(self.number)}.10", f"{_subnet_prefix(self.number)}.250"

    @property
    def cgroup_root(self) -> str:
        return cgroup_root_path(self.number)

    @property
    def state_dir(self) -> Path:
        return _state_dir(self.number)

    @property
    def containerd_socket(self) -> Path:
        return _containerd_socket(self.number)

    @property
    def _ledger(self) -> Path:
        return _ledger_path(self.number)

    # --- acquiring -----------------------------------------------------------------------

    @classmethod
    def acquire(cls) -> Slot:
        """The lowest free slot, after undoing what crashed runs left in every free one."""
        clean_leftovers()
        for number in range(SLOTS):
            slot = cls._try(number)
            if slot is not None:
                slot._record_shared()
                return slot
        raise LocalClusterError(
            f"all {SLOTS} real-node slots are taken (other runs hold the locks in {STATE_ROOT})"
        )

    @classmethod
    def _try(cls, number: int) -> Slot | None:
        STATE_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = (STATE_ROOT / f"slot-{number}.lock").open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        slot = cls(number, lock)
        slot._undo_leftovers()
        return slot

    def _undo_leftovers(self) -> None:
        """A ledger with a free lock is what a crashed run left: undo it first."""
        if self._ledger.exists():
            self.entries = json.loads(self._ledger.read_text() or "[]")
            self._undo()
            with _host_lock():
                if not self._other_slot_alive():
                    _restore_shared()
        self.entries = []
        self._save()

    def _save(self) -> None:
        temporary = self._ledger.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.entries, indent=1))
        temporary.replace(self._ledger)

    def _record(self, entry: dict[str, Any]) -> None:
        if entry not in self.entries:
            self.entries.append(entry)
            self._save()

    # --- what callers record before changing the host -----------------------------------

    def record_bridge(self) -> None:
        self._record({"kind": "link", "name": self.bridge})

    def record_cgroup_root(self) -> None:
        self._record({"kind": "cgroup", "path": self.cgroup_root})

    def record_tree(self, path: Path) -> None:
        """Everything under ``path`` is ours: mounts under it are unmounted, then it is
        removed."""
        self._record({"kind": "tree", "path": str(path)})

    def record_processes(self, marker: str) -> None:
        """Processes whose command line contains ``marker`` are ours (containerd's shims
        carry its socket path) and are killed at release."""
        self._record({"kind": "processes", "marker": marker})

    def record_log_links(self, pod_logs_dir: Path) -> None:
        """Links in /var/log/containers that point into ``pod_logs_dir`` are ours."""
        self._record({"kind": "log-links", "target": str(pod_logs_dir)})

    def _record_shared(self) -> None:
        """The first live slot writes down the shared state as it finds it."""
        with _host_lock():
            shared = STATE_ROOT / "host.json"
            if shared.exists():
                return
            record = {
                "sysctls": {name: hostops.read_sysctl(name) for name in KUBELET_SYSCTLS},
                "absent": [str(p) for p in SHARED_PATHS if not p.exists()],
                "iptables": hostops.kubelet_iptables(),
            }
            shared.write_text(json.dumps(record, indent=1))

    # --- releasing -----------------------------------------------------------------------

    def release(self) -> None:
        """Undo this slot's changes, then the shared ones if no other slot is alive."""
        undone = False
        try:
            self._undo()
            self.entries = []
            undone = True
        finally:
            with _host_lock():
                try:
                    if undone:
                        if not self._other_slot_alive():
                            _restore_shared()
                        self._ledger.unlink(missing_ok=True)
                finally:
                    # Closed under the host lock: a slot released at the same time takes
                    # that lock next and must find this one free, or each would see the
                    # other alive and neither would restore the shared state.
                    self.lock.close()

    def _undo(self) -> None:
        """Undo this slot's own changes (the shared state is the caller's)."""
        owner = Owner.of(self.number, self.entries)
        has_bridge = any(e["kind"] == "link" for e in self.entries)
        # Processes first: containers (in our cgroups), then the shims (by their
        # containerd's socket path), so nothing holds a mount or a cgroup any more.
        for path in owner.cgroups:
            hostops.kill_cgroup(path)
        hostops.kill_matching(list(owner.markers))
        links = hostops.links()
        for netns in hostops.netns_names():
            if owner.owns_netns(hostops.netns_facts(netns), links):
                hostops.unmount_under(NETNS_DIR / netns)
                (NETNS_DIR / netns).unlink(missing_ok=True)
        for tree in owner.trees:
            hostops.unmount_under(tree)
        for path in owner.cgroups:
            hostops.remove_cgroup(path)
        if has_bridge:
            # The veths first: deleting one end takes its peer along at once, whereas
            # the kernel frees a removed namespace (and the veth in it) asynchronously.
            for link in hostops.links():
                if link.get("master") == self.bridge:
                    hostops.ip("link", "delete", link["ifname"])
            hostops.ip("link", "delete", self.bridge)
        for target in owner.log_targets:
            hostops.remove_links_into(CONTAINER_LOG_LINKS, target)
        for entry in owner.shared_entries():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        for tree in owner.trees:
            shutil.rmtree(tree, ignore_errors=True)

    def _other_slot_alive(self) -> bool:
        for number in range(SLOTS):
            if number == self.number:
                continue
            path = STATE_ROOT / f"slot-{number}.lock"
            if not path.exists():
                continue
            with path.open("a+") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(probe, fcntl.LOCK_UN)
        return False


def clean_leftovers() -> list[int]:
    """Undo what crashed runs left in every slot nobody holds; the slots cleaned."""
    cleaned = []
    for number in range(SLOTS):
        if not (STATE_ROOT / f"slot-{number}.json").exists():
            continue
        slot = Slot._try(number)
        if slot is not None:
            cleaned.append(number)
            slot.release()
    return cleaned


@dataclass(frozen=True)
class Owner:
    """What one slot owns on the host: by its number (bridge, subnet, cgroup root,
    containerd socket) and its ledger (trees, process markers, log-link targets)."""

    number: int
    trees: tuple[Path, ...] = ()
    markers: tuple[str, ...] = ()
    log_targets: tuple[Path, ...] = ()
    cgroups: tuple[str, ...] = ()

    @classmethod
    def of(cls, number: int, entries: list[dict[str, Any]]) -> Owner:
        return cls(
            number,
            trees=tuple(Path(e["path"]) for e in entries if e["kind"] == "tree"),
            markers=tuple(e["marker"] for e in entries if e["kind"] == "processes"),
            log_targets=tuple(Path(e["target"]) for e in entries if e["kind"] == "log-links"),
            cgroups=tuple(e["path"] for e in entries if e["kind"] == "cgroup"),
        )

    @classmethod
    def from_ledger(cls, number: int) -> Owner | None:
        """The owner of slot ``number`` if it has a ledger (a live run, or a crashed one
        not cleaned yet)."""
        try:
            entries = json.loads(_ledger_path(number).read_text() or "[]")
        except (OSError, ValueError):
            return None
        return cls.of(number, entries)

    def owns_netns(
        self, facts: tuple[set[int], set[str]], host_links: list[dict[str, Any]]
    ) -> bool:
        """A network namespace is ours if its pod interface's peer is plugged into our
        bridge, or it has an address in our subnet (its veth may be gone already)."""
        peers, addresses = facts
        on_bridge = {
            link["ifindex"] for link in host_links if link.get("master") == bridge_name(self.number)
        }
        prefix = _subnet_prefix(self.number) + "."
        return bool(peers & on_bridge) or any(a.startswith(prefix) for a in addresses)

    def owns_argv(self, argv: str) -> bool:
        return any(m in argv for m in self.markers) or any(str(t) in argv for t in self.trees)

    def container_ids(self) -> set[tuple[str, str]]:
        """(namespace, id) of every container and sandbox containerd has in our trees."""
        ids = set()
        for tree in self.trees:
            for bundle in tree.glob("*/io.containerd.runtime.v2.task/*/*"):
                ids.add((bundle.parent.name, bundle.name))
            for cri in tree.glob("*/io.containerd.grpc.v1.cri/*/*"):
                if cri.parent.name in ("sandboxes", "containers"):
                    ids.add(("k8s.io", cri.name))
        return ids

    def shared_entries(self) -> set[Path]:
        """Our containers' entries in the shared directories: the shims' sockets (named
        ``sha256(<containerd address>/<namespace>/<id>)`` of the sandbox, or as the
        bundle's ``address`` file says), runc's state directories and libcni's cache."""
        ids = self.container_ids()
        found = set()
        for namespace, container in ids:
            found.add(CONTAINERD_RUN / "runc" / namespace / container)
            key = f"{_containerd_socket(self.number)}/{namespace}/{container}"
            found.add(CONTAINERD_RUN / "s" / hashlib.sha256(key.encode()).hexdigest())
        for tree in self.trees:
            for address in tree.glob("*/io.containerd.runtime.v2.task/*/*/address"):
                with contextlib.suppress(OSError):
                    socket = Path(address.read_text().strip().removeprefix("unix://"))
                    if socket.parent == CONTAINERD_RUN / "s":
                        found.add(socket)
        names = {f"-{container}-" for _, container in ids}
        found.update(p for p in hostops.entries(CNI_CACHE) if any(n in p.name for n in names))
        return found

    def owns_log_link(self, link: Path) -> bool:
        with contextlib.suppress(OSError):
            target = Path(os.readlink(link))
            return any(target.is_relative_to(t) for t in (*self.log_targets, *self.trees))
        return False


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    STATE_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (STATE_ROOT / "host.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _restore_shared() -> None:
    shared = STATE_ROOT / "host.json"
    if not shared.exists():
        return
    record = json.loads(shared.read_text())
    for name, value in record["sysctls"].items():
        hostops.write_sysctl(name, value)
    if "iptables" in record:
        hostops.restore_kubelet_iptables(record["iptables"])
    for path in map(Path, record["absent"]):
        hostops.unmount_under(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    shared.unlink()
