"""The orphan decision (``orphan_rules.judge``) and the record it reads (``AskedLog``):
which remote pods are orphans, given what interLink asked, when, from which virtual
node, the pod's phase and age, and what the local cluster says."""

from __future__ import annotations

import dataclasses

import pytest

from sidecar.offload.orphan_rules import EvidenceKind, LocalAnswer, PodFacts, judge
from sidecar.settings import SettingsError, load
from sidecar.status.asked import AskedLog

WINDOW = 600.0

# An orphan by the unpolled rule: old, running, unasked for longer than the window while
# its node kept asking about other pods, the sidecar up long enough.
UNPOLLED = PodFacts(
    phase="Running",
    deleting=False,
    journalled=False,
    creating=False,
    age=3600,
    unpolled_for=700,
    node="vk-1",
    node_live_for=900,
    uptime=1000,
)


def facts(**changes: object) -> PodFacts:
    return dataclasses.replace(UNPOLLED, **changes)  # type: ignore[arg-type]


def test_a_running_pod_nobody_asked_about_while_its_node_kept_asking_is_an_orphan() -> None:
    evidence = judge(UNPOLLED, window=WINDOW)
    assert evidence is not None
    assert evidence.kind is EvidenceKind.UNPOLLED
    assert "700 s" in evidence.detail and "vk-1" in evidence.detail


@pytest.mark.parametrize(
    ("why", "changes"),
    [
        ("asked about within the window", {"unpolled_for": 599}),
        ("its node is silent now (dead virtual kubelet or interLink down)", {"node_live_for": 0}),
        ("its node has not been asking for the whole window", {"node_live_for": 599}),
        ("the sidecar is up for less than the window", {"uptime": 599}),
        ("younger than the window", {"age": 599}),
        ("finished: the virtual kubelet never polls a terminal pod", {"phase": "Succeeded"}),
        ("failed: the same", {"phase": "Failed"}),
        ("being deleted already", {"deleting": True}),
        ("its delete is journalled (the janitor owns it)", {"journalled": True}),
        ("its create is running", {"creating": True}),
        ("the local pod exists", {"local": LocalAnswer.EXISTS}),
    ],
)
def test_not_an_orphan(why: str, changes: dict[str, object]) -> None:
    assert judge(facts(**changes), window=WINDOW) is None, why


@pytest.mark.parametrize("phase", ["Running", "Pending", "Succeeded", "Failed", "Unknown"])
def test_a_missing_local_pod_is_definite_in_any_phase_and_needs_no_liveness(phase: str) -> None:
    silent = {"phase": phase, "node_live_for": 0.0, "unpolled_for": 0.0, "uptime": 1.0}
    gone = judge(facts(local=LocalAnswer.NOT_FOUND, **silent), window=WINDOW)
    replaced = judge(facts(local=LocalAnswer.REPLACED, **silent), window=WINDOW)
    assert gone is not None and gone.kind is EvidenceKind.LOCAL_POD_NOT_FOUND
    assert replaced is not None and replaced.kind is EvidenceKind.LOCAL_POD_REPLACED


def test_an_existing_local_pod_wins_over_silence() -> None:
    finished = facts(phase="Succeeded", local=LocalAnswer.EXISTS, unpolled_for=10**6)
    assert judge(finished, window=WINDOW) is None
    assert judge(facts(local=LocalAnswer.EXISTS, unpolled_for=10**6), window=WINDOW) is None


@pytest.mark.parametrize("local", [LocalAnswer.NOT_FOUND, LocalAnswer.REPLACED])
def test_even_definite_evidence_spares_young_journalled_deleting_or_creating_pods(
    local: LocalAnswer,
) -> None:
    for changes in ({"age": 10}, {"journalled": True}, {"deleting": True}, {"creating": True}):
        assert judge(facts(local=local, **changes), window=WINDOW) is None, changes


def test_a_pod_without_a_node_name_is_judged_by_all_of_interlink() -> None:
    evidence = judge(facts(node=""), window=WINDOW)
    assert evidence is not None and "interLink" in evidence.detail


# --- the record --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pod(uid: str, node: str | None = "vk-1") -> dict[str, object]:
    spec = {"nodeName": node} if node else {}
    return {"metadata": {"uid": uid, "name": uid, "namespace": "default"}, "spec": spec}


def test_a_node_is_live_while_its_calls_keep_coming_without_a_long_gap() -> None:
    clock = Clock()
    asked = AskedLog(gap=30, clock=clock)
    for _ in range(10):
        asked.saw_status([pod("b")])
        clock.now += 5
    assert asked.node_live_for("vk-1") == pytest.approx(50)
    assert asked.any_live_for() == pytest.approx(50)
    assert asked.node_live_for("vk-2") == 0
    clock.now += 40  # silent for longer than the gap: not live
    assert asked.node_live_for("vk-1") == 0
    asked.saw_status([pod("b")])  # back: a new stretch, old silence not held against pods
    clock.now += 5
    assert asked.node_live_for("vk-1") == pytest.approx(5)


def test_one_nodes_calls_do_not_make_another_node_live() -> None:
    clock = Clock()
    asked = AskedLog(gap=30, clock=clock)
    asked.saw_status([pod("dead-pod", "vk-dead")])
    for _ in range(100):
        clock.now += 5
        asked.saw_status([pod("b", "vk-alive")])
    assert asked.node_live_for("vk-alive") == pytest.approx(495)
    assert asked.node_live_for("vk-dead") == 0
    assert asked.unpolled_for("dead-pod") == pytest.approx(500)


def test_pings_and_logs_are_not_node_liveness_but_logs_count_as_asked() -> None:
    clock = Clock()
    asked = AskedLog(gap=30, clock=clock)
    for _ in range(20):
        clock.now += 5
        asked.saw_status([])
    assert asked.any_live_for() == 0
    assert asked.last_ping == clock.now
    clock.now += 1
    asked.saw_logs("a")
    clock.now += 2
    assert asked.unpolled_for("a") == pytest.approx(2)
    assert asked.unpolled_for("never-asked") == pytest.approx(103)  # since the start


def test_prune_forgets_pods_without_a_remote_pod_and_silent_nodes() -> None:
    clock = Clock()
    asked = AskedLog(gap=30, clock=clock)
    asked.saw_status([pod("kept"), pod("gone", "vk-old")])
    clock.now += 700
    asked.saw_status([pod("recent", "vk-2")])
    asked.prune({"kept"}, older_than=600)
    assert asked.last_asked("kept") is not None
    assert asked.last_asked("recent") is not None
    assert asked.last_asked("gone") is None
    assert set(asked.nodes()) == {"vk-2"}


# --- the settings ------------------------------------------------------------------------

BASE = {"APP_SOCKET_ADDRESS": "unix:///x.sock"}


def test_the_defaults_are_the_safe_ones() -> None:
    settings = load(None, BASE)
    assert settings.offloading.orphan_policy == "report"
    assert settings.offloading.orphan_after_seconds == 600
    assert settings.k8s.local_kubeconfig_path == ""


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("OFFLOADING_ORPHAN_AFTER_SECONDS", "5", "offloading.orphan_after_seconds"),
        ("OFFLOADING_ORPHAN_AFTER_SECONDS", "soon", "offloading.orphan_after_seconds"),
        ("OFFLOADING_ORPHAN_POLICY", "nuke", "offloading.orphan_policy"),
    ],
)
def test_bad_values_are_refused_at_start_naming_the_key(
    variable: str, value: str, key: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load(None, {**BASE, variable: value})
    assert any(problem.startswith(key) for problem in raised.value.problems)
