"""The host operations a real node's ledger is undone with, and read back by snapshots:
sysctls, mounts, cgroups, processes, network namespaces and links, iptables chains. Each
is idempotent: undoing a change already undone (or never made) does nothing."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

CGROUP_FS = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/var/run/netns")
KUBELET_IPTABLES = {
    "filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
    "mangle": ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"),
    "nat": ("KUBE-KUBELET-CANARY",),
}
"""The chains every kubelet creates at start (``makeIPTablesUtilChains``, default true),
for IPv4 and IPv6, and re-creates every minute if gone; KUBE-FIREWALL is jumped to from
INPUT and OUTPUT (IPv4) and drops packets to 127.0.0.0/8 from other sources. Shared: the
first slot records which exist, the last one removes the others."""
IPTABLES_TOOLS = ("iptables", "ip6tables")
MNT_DETACH = 2


def read_sysctl(name: str) -> str:
    return (Path("/proc/sys") / name).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
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


def unmount_under(tree: Path) -> None:
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
                libc.umount2(target, MNT_DETACH)


def cgroup_dirs(relative: str) -> list[Path]:
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


def kill_cgroup(relative: str) -> None:
    for directory in cgroup_dirs(relative):
        for procs in directory.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)


def remove_cgroup(relative: str, *, timeout: float = 10) -> None:
    """rmdir the cgroup tree bottom-up; a cgroup whose last task is still exiting refuses
    with EBUSY for a moment, so this retries until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for directory in cgroup_dirs(relative):
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
        kill_cgroup(relative)
        time.sleep(0.1)  # polling: the kernel frees an emptied cgroup asynchronously


def kill_matching(markers: list[str]) -> None:
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


def netns_names() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob("*")) if NETNS_DIR.is_dir() else []


def netns_facts(name: str) -> tuple[set[int], set[str]]:
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


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], capture_output=True, check=False)


def links(netns: str | None = None) -> list[dict[str, Any]]:
    argv = ["ip", "-j", *(["-n", netns] if netns else []), "link", "show"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return []
    links: list[dict[str, Any]] = json.loads(done.stdout)
    return links


def remove_links_into(directory: Path, target: Path) -> None:
    for link in entries(directory):
        with contextlib.suppress(OSError):
            if link.is_symlink() and Path(os.readlink(link)).is_relative_to(target):
                link.unlink(missing_ok=True)


def entries(directory: Path) -> list[Path]:
    """The entries of ``directory`` (none if it is absent or goes away meanwhile)."""
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def kubelet_iptables() -> dict[str, list[str]]:
    """The kubelet's chains and the rules that name them (``<table> <iptables-save
    line>``, chain counters left out), per tool; none without the tool."""
    names = {name for chains in KUBELET_IPTABLES.values() for name in chains}
    state = {}
    for tool in IPTABLES_TOOLS:
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


def restore_kubelet_iptables(recorded: dict[str, list[str]]) -> None:
    """Delete the kubelet's rules and chains that were not there when recorded (rules
    first: a chain still jumped to cannot be deleted)."""
    for tool, lines in kubelet_iptables().items():
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
