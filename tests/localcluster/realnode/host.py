"""What a real node changes on the host, written down before it happens and undone after.

A kubelet with containerd is not a process that cleans up after itself: it writes three
sysctls at every start, containerd's shims and the containers outlive both, and the pods
leave overlay, shm, tmpfs and network-namespace mounts, cgroups, veths on a bridge, log
links in ``/var/log/containers`` and directories that did not exist before. Tests run on
developers' machines, so every one of those changes is recorded in a ledger *before* it
is made and undone at stop, and a start after a crash (ledger left behind, its slot lock
free) first undoes what the crashed run left.

Up to ``SLOTS`` real nodes can live on one host at once (the integration tier's cluster
and the end-to-end tier's remote cluster, plus a ``make run``). Each takes a slot, held
by an ``flock`` for its whole life, and owns the slot's bridge, subnet, cgroup root and
state directory. What all slots share (the kubelet's sysctls, directories containerd and
the kubelet create at fixed paths) is recorded by the first slot in ``host.json`` and
restored by the last one to go.

Contract: ``Slot.acquire()`` returns a slot whose leftovers are cleaned, or raises
LocalClusterError when all are taken; ``Slot.record_*`` persist the entry before the
caller changes the host; ``Slot.release()`` undoes the slot's entries (and the shared
ones if no other slot is alive), never raises for a change already undone, and may be
called again after a partial failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tests.localcluster.binaries import LocalClusterError

STATE_ROOT = Path("/run/interlink-k8s-sidecar-realnode")
"""Ledgers, locks, containerd's state and sockets (short paths: a unix socket path has
at most 107 bytes)."""
SLOTS = 8
CGROUP_FS = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/var/run/netns")
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
)
_MNT_DETACH = 2


def _bridge(slot: int) -> str:
    return f"ilsrn{slot}"


def _subnet_prefix(slot: int) -> str:
    return f"10.213.{slot}"


@dataclass
class Slot:
    """One real node's share of the host: bridge, subnet, cgroup root, state directory."""

    number: int
    lock: TextIO
    entries: list[dict[str, Any]] = field(default_factory=list)

    # --- names ---------------------------------------------------------------------------

    @property
    def bridge(self) -> str:
        return _bridge(self.number)

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
        return f"/interlink-realnode-{self.number}"

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / f"slot-{self.number}"

    @property
    def containerd_socket(self) -> Path:
        return self.state_dir / "containerd.sock"

    @property
    def _ledger(self) -> Path:
        return STATE_ROOT / f"slot-{self.number}.json"

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
                "sysctls": {name: _read_sysctl(name) for name in KUBELET_SYSCTLS},
                "absent": [str(p) for p in SHARED_PATHS if not p.exists()],
            }
            shared.write_text(json.dumps(record, indent=1))

    # --- releasing -----------------------------------------------------------------------

    def release(self) -> None:
        """Undo this slot's changes, then the shared ones if no other slot is alive."""
        try:
            self._undo()
            self.entries = []
            self._ledger.unlink(missing_ok=True)
        finally:
            self.lock.close()

    def _undo(self) -> None:
        ours = [e for e in self.entries if e["kind"] in ("link", "cgroup", "tree")]
        markers = [e["marker"] for e in self.entries if e["kind"] == "processes"]
        trees = [Path(e["path"]) for e in self.entries if e["kind"] == "tree"]
        cgroups = [e["path"] for e in self.entries if e["kind"] == "cgroup"]
        # Processes first: containers (in our cgroups), then the shims (by their
        # containerd's socket path), so nothing holds a mount or a cgroup any more.
        for path in cgroups:
            _kill_cgroup(path)
        _kill_matching(markers)
        if any(e["kind"] == "link" for e in ours):
            _remove_netns_on_bridge(self.bridge)
        for tree in trees:
            _unmount_under(tree)
        for path in cgroups:
            _remove_cgroup(path)
        for entry in self.entries:
            if entry["kind"] == "link":
                subprocess.run(
                    ["ip", "link", "delete", entry["name"]],
                    capture_output=True,
                    check=False,
                )
            elif entry["kind"] == "log-links":
                _remove_links_into(CONTAINER_LOG_LINKS, Path(entry["target"]))
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)
        with _host_lock():
            if not self._other_slot_alive():
                _restore_shared()

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
        _write_sysctl(name, value)
    for path in map(Path, record["absent"]):
        _unmount_under(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    shared.unlink()


# --- the host primitives -----------------------------------------------------------------


def _read_sysctl(name: str) -> str:
    return (Path("/proc/sys") / name).read_text().strip()


def _write_sysctl(name: str, value: str) -> None:
    path = Path("/proc/sys") / name
    if path.read_text().strip() != value:
        path.write_text(value + "\n")


def mount_points() -> list[Path]:
    """Every mount point of this mount namespace (octal escapes of mountinfo decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split(" ")[4]
        points.append(Path(raw.encode().decode("unicode_escape")))
    return points


def _unmount_under(tree: Path) -> None:
    """Unmount every mount at or under ``tree``, deepest first; a busy one lazily."""
    tree = tree.resolve()  # mountinfo has /run/netns for /var/run/netns
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    for _ in range(3):  # a mount can be stacked over another at the same point
        points = [p for p in mount_points() if p == tree or tree in p.parents]
        if not points:
            return
        for point in sorted(points, key=lambda p: len(p.parts), reverse=True):
            target = str(point).encode()
            if libc.umount2(target, 0) != 0:
                libc.umount2(target, _MNT_DETACH)


def _cgroup_dirs(relative: str) -> list[Path]:
    """The directories of cgroup ``relative`` in every mounted hierarchy (v1 controllers,
    the v1 ``name=systemd`` one and the v2 ``unified`` one)."""
    if not CGROUP_FS.is_dir():
        return []
    found = []
    for hierarchy in sorted(CGROUP_FS.iterdir()):
        directory = hierarchy / relative.lstrip("/")
        if hierarchy.is_dir() and not hierarchy.is_symlink() and directory.is_dir():
            found.append(directory)
    return found


def _kill_cgroup(relative: str) -> None:
    for directory in _cgroup_dirs(relative):
        for procs in directory.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)


def _remove_cgroup(relative: str, *, timeout: float = 10) -> None:
    """rmdir the cgroup tree bottom-up; a cgroup whose last task is still exiting refuses
    with EBUSY for a moment, so this retries until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for directory in _cgroup_dirs(relative):
            for child in sorted(
                [d for d in directory.rglob("*") if d.is_dir()] + [directory],
                key=lambda d: len(d.parts),
                reverse=True,
            ):
                try:
                    child.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(child)
        if not left or time.monotonic() > deadline:
            return
        _kill_cgroup(relative)
        time.sleep(0.1)  # polling: the kernel frees an emptied cgroup asynchronously


def _kill_matching(markers: list[str]) -> None:
    if not markers:
        return
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(marker in argv for marker in markers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def _remove_netns_on_bridge(bridge: str) -> None:
    """Remove the CNI network namespaces whose pod interface is plugged into ``bridge``
    (the veth's host end has it as master), unmounting the nsfs bind mount first."""
    if not NETNS_DIR.is_dir():
        return
    host_links = _links()
    on_bridge = {link["ifindex"] for link in host_links if link.get("master") == bridge}
    for netns in sorted(NETNS_DIR.glob("cni-*")):
        peers = [
            link.get("link_index")
            for link in _links(netns.name)
            if link.get("ifname") != "lo" and "link_index" in link
        ]
        if any(peer in on_bridge for peer in peers):
            _unmount_under(netns)
            netns.unlink(missing_ok=True)


def _links(netns: str | None = None) -> list[dict[str, Any]]:
    argv = ["ip", "-j", *(["-n", netns] if netns else []), "link", "show"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return []
    links: list[dict[str, Any]] = json.loads(done.stdout)
    return links


def _remove_links_into(directory: Path, target: Path) -> None:
    if not directory.is_dir():
        return
    for link in directory.iterdir():
        if link.is_symlink() and Path(os.readlink(link)).is_relative_to(target):
            link.unlink(missing_ok=True)


# --- what a test compares before and after -----------------------------------------------


def snapshot() -> dict[str, Any]:
    """The host state a real node touches, for a before/after comparison."""
    sysctls = {name: _read_sysctl(name) for name in (*KUBELET_SYSCTLS, "net/ipv4/ip_forward")}
    cgroups = sorted(  # top level only: where a kubelet or containerd would leave one
        str(d)
        for hierarchy in (CGROUP_FS.iterdir() if CGROUP_FS.is_dir() else [])
        if hierarchy.is_dir() and not hierarchy.is_symlink()
        for d in hierarchy.iterdir()
        if d.is_dir()
    )
    return {
        "sysctls": sysctls,
        "mounts": sorted(str(p) for p in mount_points()),
        "cgroups": cgroups,
        "links": sorted(link["ifname"] for link in _links()),
        "netns": sorted(p.name for p in NETNS_DIR.glob("*")) if NETNS_DIR.is_dir() else [],
        "paths": {str(p): p.exists() for p in SHARED_PATHS},
        "processes": sorted(
            p.name
            for p in Path("/proc").glob("[0-9]*")
            if _comm(p) in ("containerd", "containerd-shim", "containerd-shim-runc-v2", "kubelet")
        ),
    }


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""
