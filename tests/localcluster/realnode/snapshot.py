"""What a test compares before and after a real node: the host state it touches, with
what other live real nodes own left out (see ``snapshot``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.localcluster.realnode import hostops
from tests.localcluster.realnode.host import (
    CNI_CACHE,
    CONTAINER_LOG_LINKS,
    CONTAINERD_RUN,
    KUBELET_SYSCTLS,
    SHARED_PATHS,
    SLOTS,
    STATE_ROOT,
    Owner,
    bridge_name,
    cgroup_root_path,
)
from tests.localcluster.realnode.hostops import CGROUP_FS, NETNS_DIR


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
        if number != slot and (owner := Owner.from_ledger(number)) is not None
    ]
    mine = Owner.from_ledger(slot) if slot is not None else None
    recorded = _recorded_shared() if others else None
    host_links = hostops.links()
    bridges = {bridge_name(o.number) for o in others}
    facts = (
        {name: hostops.netns_facts(name) for name in hostops.netns_names()}
        if others or mine
        else {}
    )
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
    their_cgroups = {cgroup_root_path(o.number).lstrip("/") for o in others}
    sysctls = {
        name: hostops.read_sysctl(name) for name in (*KUBELET_SYSCTLS, "net/ipv4/ip_forward")
    }
    if recorded is not None:
        sysctls |= recorded["sysctls"]
    cgroups = sorted(  # top level only: where a kubelet or containerd would leave one
        str(d)
        for hierarchy in (CGROUP_FS.iterdir() if CGROUP_FS.is_dir() else [])
        if hierarchy.is_dir() and not hierarchy.is_symlink()
        for d in hostops.entries(hierarchy)
        if d.is_dir() and d.name not in their_cgroups
    )
    entries = [
        entry
        for entry in [
            *hostops.entries(CONTAINERD_RUN / "s"),
            *hostops.entries(CONTAINERD_RUN / "fifo"),
            *(e for ns in hostops.entries(CONTAINERD_RUN / "runc") for e in hostops.entries(ns)),
            *hostops.entries(CNI_CACHE),
            *hostops.entries(CONTAINER_LOG_LINKS),
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
            str(p)
            for p in hostops.mount_points()
            if not _under(p, their_trees) or _under(p, my_trees)
        ),
        "cgroups": cgroups,
        "links": sorted(
            link["ifname"]
            for link in host_links
            if link["ifname"] not in bridges and link.get("master") not in bridges
        ),
        "netns": [
            name
            for name in hostops.netns_names()
            if name not in theirs_netns and (not netns_wiped or name in my_netns)
        ],
        "paths": {
            str(p): (str(p) not in recorded["absent"]) if recorded is not None else p.exists()
            for p in SHARED_PATHS
        },
        "entries": sorted(str(e) for e in entries),
        "iptables": recorded["iptables"] if recorded is not None else hostops.kubelet_iptables(),
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
    record.setdefault("iptables", hostops.kubelet_iptables())
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
