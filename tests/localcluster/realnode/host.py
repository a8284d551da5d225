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
import ctypes
import fcntl
import hashlib
import json
import os
import shlex
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
KUBELET_IPTABLES = {
    "filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
    "mangle": ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"),
    "nat": ("KUBE-KUBELET-CANARY",),
}
"""The chains every kubelet creates at start (``makeIPTablesUtilChains``, default true),
for IPv4 and IPv6, and re-creates every minute if gone; KUBE-FIREWALL is jumped to from
INPUT and OUTPUT (IPv4) and drops packets to 127.0.0.0/8 from other sources. Shared: the
first slot records which exist, the last one removes the others."""
_IPTABLES_TOOLS = ("iptables", "ip6tables")
_MNT_DETACH = 2


def _bridge(slot: int) -> str:
    return f"ilsrn{slot}"


def _subnet_prefix(slot: int) -> str:
    return f"10.213.{slot}"


def _cgroup_root(slot: int) -> str:
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
        return _cgroup_root(self.number)

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
                "sysctls": {name: _read_sysctl(name) for name in KUBELET_SYSCTLS},
                "absent": [str(p) for p in SHARED_PATHS if not p.exists()],
                "iptables": _kubelet_iptables(),
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
        owner = _Owner.of(self.number, self.entries)
        has_bridge = any(e["kind"] == "link" for e in self.entries)
        # Processes first: containers (in our cgroups), then the shims (by their
        # containerd's socket path), so nothing holds a mount or a cgroup any more.
        for path in owner.cgroups:
            _kill_cgroup(path)
        _kill_matching(list(owner.markers))
        links = _links()
        for netns in _netns_names():
            if owner.owns_netns(_netns_facts(netns), links):
                _unmount_under(NETNS_DIR / netns)
                (NETNS_DIR / netns).unlink(missing_ok=True)
        for tree in owner.trees:
            _unmount_under(tree)
        for path in owner.cgroups:
            _remove_cgroup(path)
        if has_bridge:
            # The veths first: deleting one end takes its peer along at once, whereas
            # the kernel frees a removed namespace (and the veth in it) asynchronously.
            for link in _links():
                if link.get("master") == self.bridge:
                    _ip("link", "delete", link["ifname"])
            _ip("link", "delete", self.bridge)
        for target in owner.log_targets:
            _remove_links_into(CONTAINER_LOG_LINKS, target)
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
class _Owner:
    """What one slot owns on the host: by its number (bridge, subnet, cgroup root,
    containerd socket) and its ledger (trees, process markers, log-link targets)."""

    number: int
    trees: tuple[Path, ...] = ()
    markers: tuple[str, ...] = ()
    log_targets: tuple[Path, ...] = ()
    cgroups: tuple[str, ...] = ()

    @classmethod
    def of(cls, number: int, entries: list[dict[str, Any]]) -> _Owner:
        return cls(
            number,
            trees=tuple(Path(e["path"]) for e in entries if e["kind"] == "tree"),
            markers=tuple(e["marker"] for e in entries if e["kind"] == "processes"),
            log_targets=tuple(Path(e["target"]) for e in entries if e["kind"] == "log-links"),
            cgroups=tuple(e["path"] for e in entries if e["kind"] == "cgroup"),
        )

    @classmethod
    def from_ledger(cls, number: int) -> _Owner | None:
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
            link["ifindex"] for link in host_links if link.get("master") == _bridge(self.number)
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
        found.update(p for p in _entries(CNI_CACHE) if any(n in p.name for n in names))
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
        _write_sysctl(name, value)
    if "iptables" in record:
        _restore_kubelet_iptables(record["iptables"])
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


def _netns_names() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob("*")) if NETNS_DIR.is_dir() else []


def _netns_facts(name: str) -> tuple[set[int], set[str]]:
    """The host ifindexes the namespace's interfaces are paired with, and its addresses."""
    done = subprocess.run(
        ["ip", "-j", "-n", name, "addr", "show"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        return set(), set()
    interfaces = json.loads(done.stdout)
    peers = {i["link_index"] for i in interfaces if i.get("ifname") != "lo" and "link_index" in i}
    addresses = {a.get("local", "") for i in interfaces for a in i.get("addr_info") or []}
    return peers, addresses


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], capture_output=True, check=False)


def _links(netns: str | None = None) -> list[dict[str, Any]]:
    argv = ["ip", "-j", *(["-n", netns] if netns else []), "link", "show"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return []
    links: list[dict[str, Any]] = json.loads(done.stdout)
    return links


def _remove_links_into(directory: Path, target: Path) -> None:
    for link in _entries(directory):
        with contextlib.suppress(OSError):
            if link.is_symlink() and Path(os.readlink(link)).is_relative_to(target):
                link.unlink(missing_ok=True)


def _entries(directory: Path) -> list[Path]:
    """The entries of ``directory`` (none if it is absent or goes away meanwhile)."""
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def _kubelet_iptables() -> dict[str, list[str]]:
    """The kubelet's chains and the rules that name them (``<table> <iptables-save
    line>``, chain counters left out), per tool; none without the tool."""
    names = {name for chains in KUBELET_IPTABLES.values() for name in chains}
    state = {}
    for tool in _IPTABLES_TOOLS:
        try:
            done = subprocess.run(
                [f"{tool}-save"], capture_output=True, text=True, check=False, timeout=30
            )
        except FileNotFoundError:
            continue
        lines, table = [], ""
        for line in done.stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                if line[1:].split(" ")[0] in names:
                    lines.append(f"{table} {line.split(' ')[0]}")
            elif line.startswith("-A ") and any(name in line.split() for name in names):
                lines.append(f"{table} {line}")
        state[tool] = sorted(lines)
    return state


def _restore_kubelet_iptables(recorded: dict[str, list[str]]) -> None:
    """Delete the kubelet's rules and chains that were not there when recorded (rules
    first: a chain still jumped to cannot be deleted)."""
    for tool, lines in _kubelet_iptables().items():
        added = [line for line in lines if line not in recorded.get(tool, [])]
        for line in added:
            table, _, rule = line.partition(" ")
            if rule.startswith("-A "):
                argv = shlex.split(rule)
                subprocess.run(
                    [tool, "-t", table, "-D", *argv[1:]], capture_output=True, check=False
                )
        for line in added:
            table, _, rule = line.partition(" ")
            if rule.startswith(":"):
                for action in ("-F", "-X"):
                    subprocess.run(
                        [tool, "-t", table, action, rule[1:]], capture_output=True, check=False
                    )


# --- what a test compares before and after -----------------------------------------------


def snapshot(slot: int | None = None) -> dict[str, Any]:
    """The host state a real node touches, for a before/after comparison.

    Other real nodes may come and go meanwhile (other test sessions, a ``make run``).
    What belongs to a slot other than ``slot`` that has a ledger (a live run's, or a
    crashed one's not cleaned yet) is left out: its bridge and the veths on it, its
    cgroup root, the network namespaces on its bridge or in its subnet, the mounts and
    processes under its trees, its log links and its containers' entries in the shared
    directories. While such a slot exists, the shared state is reported as the last slot
    to go will leave it: sysctls and the kubelet's iptables chains as recorded in
    ``host.json``, the shared paths it found absent as absent (with nothing under them).

    ``slot=None`` leaves out every slot with a ledger: for a before/after around a run
    whose slot is released by the second snapshot. Pass the run's slot to keep what it
    owns in view while its ledger is still there (while it runs, after a crash, or after
    a release that failed half-way), even under a shared path the last slot removes.

    Another run's pod being set up shows for a moment as not yet its own (a network
    namespace before its address, a veth before its bridge, a shim's exiting
    start-up process): the state is read until two reads 0.1 s apart agree (at most 2 s),
    so that a before-snapshot does not catch such a moment for good.
    """
    previous = _snapshot_once(slot)
    for _ in range(20):
        time.sleep(0.1)  # polling: until two reads agree
        current = _snapshot_once(slot)
        if current == previous:
            break
        previous = current
    return previous


def _snapshot_once(slot: int | None) -> dict[str, Any]:
    others = [
        owner
        for number in range(SLOTS)
        if number != slot and (owner := _Owner.from_ledger(number)) is not None
    ]
    mine = _Owner.from_ledger(slot) if slot is not None else None
    recorded = _recorded_shared() if others else None
    host_links = _links()
    bridges = {_bridge(o.number) for o in others}
    facts = {name: _netns_facts(name) for name in _netns_names()} if others or mine else {}
    theirs_netns = {
        name for name, fact in facts.items() if any(o.owns_netns(fact, host_links) for o in others)
    }
    my_netns = {name for name, fact in facts.items() if mine and mine.owns_netns(fact, host_links)}
    my_trees = [
        *(t.resolve() for t in (mine.trees if mine else ())),
        *(NETNS_DIR.resolve() / name for name in my_netns),
    ]
    my_entries = mine.shared_entries() if mine else set()
    # What the last slot removes with the shared paths it found absent.
    wiped = [Path(p).resolve() for p in recorded["absent"]] if recorded is not None else []
    their_trees = [
        *(t.resolve() for o in others for t in o.trees),
        *(NETNS_DIR.resolve() / name for name in theirs_netns),
        *wiped,
    ]
    their_entries = {p for o in others for p in o.shared_entries()}
    their_cgroups = {_cgroup_root(o.number).lstrip("/") for o in others}
    sysctls = {name: _read_sysctl(name) for name in (*KUBELET_SYSCTLS, "net/ipv4/ip_forward")}
    if recorded is not None:
        sysctls |= recorded["sysctls"]
    cgroups = sorted(  # top level only: where a kubelet or containerd would leave one
        str(d)
        for hierarchy in (CGROUP_FS.iterdir() if CGROUP_FS.is_dir() else [])
        if hierarchy.is_dir() and not hierarchy.is_symlink()
        for d in _entries(hierarchy)
        if d.is_dir() and d.name not in their_cgroups
    )
    entries = [
        entry
        for entry in [
            *_entries(CONTAINERD_RUN / "s"),
            *_entries(CONTAINERD_RUN / "fifo"),
            *(e for ns in _entries(CONTAINERD_RUN / "runc") for e in _entries(ns)),
            *_entries(CNI_CACHE),
            *_entries(CONTAINER_LOG_LINKS),
        ]
        if entry not in their_entries
        and not any(o.owns_log_link(entry) for o in others)
        and (
            not _under(entry, wiped)
            or entry in my_entries
            or (mine is not None and mine.owns_log_link(entry))
        )
    ]
    netns_wiped = _under(NETNS_DIR, wiped)
    return {
        "sysctls": sysctls,
        "mounts": sorted(
            str(p) for p in mount_points() if not _under(p, their_trees) or _under(p, my_trees)
        ),
        "cgroups": cgroups,
        "links": sorted(
            link["ifname"]
            for link in host_links
            if link["ifname"] not in bridges and link.get("master") not in bridges
        ),
        "netns": [
            name
            for name in _netns_names()
            if name not in theirs_netns and (not netns_wiped or name in my_netns)
        ],
        "paths": {
            str(p): (str(p) not in recorded["absent"]) if recorded is not None else p.exists()
            for p in SHARED_PATHS
        },
        "entries": sorted(str(e) for e in entries),
        "iptables": recorded["iptables"] if recorded is not None else _kubelet_iptables(),
        "processes": sorted(
            p.name
            for p in Path("/proc").glob("[0-9]*")
            if _comm(p) in ("containerd", "containerd-shim", "containerd-shim-runc-v2", "kubelet")
            and _cmdline(p)  # none: exiting, or a zombie (holding nothing but its pid)
            and not any(o.owns_argv(_cmdline(p)) for o in others)
        ),
    }


def _under(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` (its last component not followed) is one of ``roots`` (resolved)
    or under one."""
    path = path.parent.resolve() / path.name
    return any(root == path or root in path.parents for root in roots)


def _recorded_shared() -> dict[str, Any] | None:
    """host.json, with what an older record lacks taken from the host as it is."""
    try:
        record: dict[str, Any] = json.loads((STATE_ROOT / "host.json").read_text())
    except (OSError, ValueError):
        return None
    record.setdefault("iptables", _kubelet_iptables())
    return record


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""
