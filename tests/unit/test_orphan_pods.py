"""The orphan-pod sweep's passes (``OrphanPods``) on a real status cache, journal and
asked-record, with a stand-in for the Offloader's delete path: orphans are reported a
pass before they are reaped, reaped through the journal under the uid's lock, never
reaped under policy ``report``, and a local read that contradicts interLink is not
trusted. Also: the remote pod carries its virtual node's name."""

from __future__ import annotations

import asyncio
import copy
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from metrics import Metrics, make_metrics
from sidecar.api import wire
from sidecar.core import naming
from sidecar.offload.journal import DeleteJournal
from sidecar.offload.local_pods import LocalPods
from sidecar.offload.locks import KeyedLocks
from sidecar.offload.orphan_pods import OrphanPods, liveness_gap, sweep_interval
from sidecar.offload.translate import build_plan
from sidecar.settings import load
from sidecar.status.asked import AskedLog
from sidecar.status.cache import StatusCache
from tests import podshapes

WINDOW = 600.0
CREATED = 1_000_000.0  # wall clock: every remote pod was created then


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Offloader:
    """The Offloader's delete path as the sweep uses it."""

    def __init__(self, journal: DeleteJournal) -> None:
        self.journal = journal
        self.janitor_wakeup = asyncio.Event()
        self.locks = KeyedLocks()
        self.creating: set[str] = set()
        self.cleaned: list[tuple[str, str]] = []
        self.journalled_when_cleaned: list[bool] = []

    def hold_uid(self, uid: str) -> AbstractAsyncContextManager[None]:
        return self.locks.hold(uid)

    def creating_since(self, uid: str) -> float | None:
        return 1.0 if uid in self.creating else None

    async def delete_held(self, uid: str, namespace: str, name: str) -> bool:
        """As ``sidecar.offload.service.Offloader.delete_held``: journal, then clean."""
        await self.journal.add(uid, namespace=namespace, name=name, tombstone=True)
        return await self.attempt_cleanup(uid, namespace)

    async def attempt_cleanup(self, uid: str, namespace: str) -> bool:
        self.journalled_when_cleaned.append(uid in self.journal)
        self.cleaned.append((uid, namespace))
        await self.journal.remove(uid)
        return True


class Reader:
    def __init__(self, local: LocalPods) -> None:
        self.local = local
        self.calls = 0

    async def list_pods(self) -> LocalPods:
        self.calls += 1
        return self.local


def remote_pod(uid: str, *, phase: str = "Running", node: str = "vk-1") -> dict[str, Any]:
    stamp = datetime.fromtimestamp(CREATED, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    annotations = naming.ownership_annotations(source_uid=uid, name=uid, namespace="default")
    annotations[naming.SOURCE_NODE_NAME_ANNOTATION] = node
    return {
        "metadata": {
            "name": naming.scoped_name(uid, uid),
            "namespace": "offloading-default",
            "uid": f"remote-{uid}",
            "creationTimestamp": stamp,
            "labels": naming.ownership_labels(uid),
            "annotations": annotations,
        },
        "status": {"phase": phase},
    }


def asked_about(uid: str, node: str = "vk-1") -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "name": uid, "namespace": "default"},
        "spec": {"nodeName": node},
    }


class World:
    """Remote pods a (orphan), b (polled) and c (finished, never polled), after the
    virtual kubelet asked about b every 5 s for 700 s."""

    def __init__(self, tmp_path: Path, *, policy: str = "delete", local: LocalPods | None = None):
        self.mono = Clock(0.0)
        self.wall = Clock(CREATED + 1000)
        self.asked = AskedLog(gap=30, clock=self.mono)
        self.cache = StatusCache()
        self.cache.replace_all(
            [remote_pod("a"), remote_pod("b"), remote_pod("c", phase="Succeeded")]
        )
        self.cache.confirm()
        self.journal = DeleteJournal(tmp_path)
        self.journal.load()
        self.offloader = Offloader(self.journal)
        self.metrics: Metrics = make_metrics(CollectorRegistry(), version="test")
        self.reader = Reader(local) if local is not None else None
        self.sweep = OrphanPods(
            cache=self.cache,
            asked=self.asked,
            offloader=self.offloader,  # type: ignore[arg-type]
            metrics=self.metrics,
            window=WINDOW,
            policy=policy,
            local=self.reader,  # type: ignore[arg-type]
            interval=60,
            wall=self.wall,
        )
        self.poll(700)

    def poll(self, seconds: float, uid: str = "b") -> None:
        end = self.mono.now + seconds
        while self.mono.now < end:
            self.mono.now += 5
            self.wall.now += 5
            self.asked.saw_status([asked_about(uid)])

    def orphans(self) -> dict[str, dict[str, Any]]:
        return {o["pod_uid"]: o for o in self.sweep.report()["orphans"]}

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_an_orphan_is_reported_for_a_pass_then_reaped_through_the_journal(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    await world.sweep.sweep()
    orphans = world.orphans()
    assert set(orphans) == {"a"}  # b is polled, c is finished
    a = orphans["a"]
    assert a["evidence"] == "unpolled" and a["unpolled_seconds"] >= WINDOW
    assert a["local"] == {"namespace": "default", "name": "a"}
    assert a["remote"]["namespace"] == "offloading-default" and a["node"] == "vk-1"
    assert a["phase"] == "Running" and a["reap_at"] > a["first_seen"]
    assert world.offloader.cleaned == []  # reported first
    assert world.sample("sidecar_janitor_orphan_pods") == 1

    world.poll(60)
    await world.sweep.sweep()
    assert world.offloader.cleaned == [("a", "offloading-default")]
    assert world.offloader.journalled_when_cleaned == [True]  # journal entry first
    assert world.journal.deleted_at("a") is not None  # with a tombstone, like /delete
    assert world.orphans() == {}
    assert world.sample("sidecar_janitor_orphans_reaped_total", kind="Pod") == 1
    assert world.sample("sidecar_janitor_orphan_pods") == 0
    assert world.sweep.report()["reaped"] == 1


async def test_policy_report_never_reaps(tmp_path: Path) -> None:
    world = World(tmp_path, policy="report")
    for _ in range(3):
        await world.sweep.sweep()
        world.poll(60)
    assert set(world.orphans()) == {"a"}
    assert world.orphans()["a"]["reap_at"] is None
    assert world.offloader.cleaned == []
    assert world.sample("sidecar_janitor_orphans_reaped_total", kind="Pod") == 0


async def test_a_pod_asked_about_again_before_its_reaping_is_spared(tmp_path: Path) -> None:
    world = World(tmp_path)
    await world.sweep.sweep()
    assert set(world.orphans()) == {"a"}
    world.asked.saw_logs("a")  # kubectl logs found the local pod
    world.poll(60)
    await world.sweep.sweep()
    assert world.offloader.cleaned == []
    assert world.orphans() == {}


async def test_journalled_or_creating_pods_are_not_orphans(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.offloader.creating.add("a")
    await world.sweep.sweep()
    assert world.orphans() == {}
    world.offloader.creating.clear()
    await world.journal.add("a", namespace="offloading-default", name="a", tombstone=True)
    world.poll(60)
    await world.sweep.sweep()
    await world.sweep.sweep()
    assert world.orphans() == {} and world.offloader.cleaned == []


async def test_a_create_starting_after_the_report_stops_the_reaping(tmp_path: Path) -> None:
    world = World(tmp_path)
    await world.sweep.sweep()
    world.offloader.creating.add("a")  # a repeated /create: its local pod exists
    world.poll(60)
    await world.sweep.sweep()
    assert world.offloader.cleaned == []


async def test_nothing_is_judged_while_the_remote_status_is_not_confirmed(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.cache.unconfirm("watch down")
    await world.sweep.sweep()
    report = world.sweep.report()
    assert report["orphans"] == [] and "not confirmed" in report["skipped"]


async def test_nothing_is_judged_unpolled_while_interlink_is_silent(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.mono.now += 60  # silence: b is not asked about any more either
    world.wall.now += 60
    await world.sweep.sweep()
    report = world.sweep.report()
    assert report["orphans"] == []
    assert report["unpolled_rule"]["judging"] is False


async def test_the_local_cluster_decides_when_it_can_be_read(tmp_path: Path) -> None:
    # c (finished, never polled) still has its local pod, a's is gone; b is polled, and
    # exists locally (else the read would contradict interLink).
    local = LocalPods(
        by_name={("default", "b"): "b", ("default", "c"): "c"}, uids=frozenset({"b", "c"})
    )
    world = World(tmp_path, local=local)
    await world.sweep.sweep()
    orphans = world.orphans()
    assert set(orphans) == {"a"}
    assert orphans["a"]["evidence"] == "local_pod_not_found"
    assert world.sweep.report()["local_read"] == {"enabled": True, "error": None}
    assert world.reader is not None and world.reader.calls == 1


async def test_a_finished_pod_whose_local_pod_is_gone_is_an_orphan_with_the_local_read(
    tmp_path: Path,
) -> None:
    local = LocalPods(
        by_name={("default", "b"): "b", ("default", "c"): "other-uid"},
        uids=frozenset({"b", "other-uid"}),
    )
    world = World(tmp_path, local=local)
    await world.sweep.sweep()
    orphans = world.orphans()
    assert orphans["c"]["evidence"] == "local_pod_replaced"
    assert orphans["a"]["evidence"] == "local_pod_not_found"


async def test_a_local_read_that_contradicts_interlink_is_not_trusted(tmp_path: Path) -> None:
    # The wrong cluster: none of the pods interLink keeps asking about is there.
    world = World(tmp_path, local=LocalPods())
    await world.sweep.sweep()
    orphans = world.orphans()
    # c (finished) would be "not found" on the wrong cluster: the unpolled rule leaves it.
    assert set(orphans) == {"a"} and orphans["a"]["evidence"] == "unpolled"
    error = world.sweep.report()["local_read"]["error"]
    assert "k8s.local_kubeconfig_path" in error


def test_the_remote_pod_carries_its_virtual_node_and_never_a_forged_one() -> None:
    settings = load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock"})
    body = podshapes.multi_container("0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f")

    def node_annotation(request: dict[str, Any]) -> str | None:
        plan = build_plan(
            wire.parse_create(request),
            offloading=settings.offloading,
            mesh_settings=settings.mesh,
        )
        annotations = plan.pod["metadata"]["annotations"]
        for obj in plan.objects():
            if obj["kind"] != "Pod":
                assert naming.SOURCE_NODE_NAME_ANNOTATION not in obj["metadata"]["annotations"]
        return annotations.get(naming.SOURCE_NODE_NAME_ANNOTATION)

    assert node_annotation(body) == podshapes.VIRTUAL_NODE
    forged = copy.deepcopy(body)
    forged["pod"]["metadata"]["annotations"][naming.SOURCE_NODE_NAME_ANNOTATION] = "elsewhere"
    assert node_annotation(forged) == podshapes.VIRTUAL_NODE
    unbound = copy.deepcopy(forged)
    del unbound["pod"]["spec"]["nodeName"]
    assert node_annotation(unbound) is None


def test_the_sweep_interval_and_liveness_gap_follow_the_window() -> None:
    assert [sweep_interval(w) for w in (10, 120, 600, 3600)] == [2.5, 30, 60, 60]
    assert [liveness_gap(w) for w in (12, 600, 3600)] == [4, 30, 30]
