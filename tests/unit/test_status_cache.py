"""The status cache and the watch event rules (410 Gone forces a re-list)."""

from __future__ import annotations

import copy
import tracemalloc
from typing import Any

import pytest

from sidecar.core import naming
from sidecar.status.cache import VANISHED_KEEP_SECONDS, VANISHED_MAX, StatusCache
from sidecar.status.watcher import _Restart, apply_event
from sidecar.tunnels import desired_tunnels


def pod(uid: str, version: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"p-{uid}",
            "namespace": "ns",
            "resourceVersion": str(version),
            "labels": {naming.POD_UID_LABEL: uid},
        },
        "status": {"phase": phase},
    }


def test_events_update_the_cache_and_older_versions_lose() -> None:
    cache = StatusCache()
    assert apply_event(cache, {"type": "ADDED", "object": pod("a", 5)}) == "5"
    apply_event(cache, {"type": "MODIFIED", "object": pod("a", 7, "Succeeded")})
    cache.upsert(pod("a", 6, "Pending"))  # a late create answer must not win
    assert cache.get("a")["status"]["phase"] == "Succeeded"
    assert (
        apply_event(cache, {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
        == "9"
    )
    apply_event(cache, {"type": "DELETED", "object": pod("a", 10)})
    assert cache.get("a") is None
    vanished = cache.vanished("a")
    assert vanished is not None and vanished.name == "p-a"


def test_410_gone_asks_for_a_relist_other_errors_restart() -> None:
    cache = StatusCache()
    with pytest.raises(_Restart) as gone:
        apply_event(cache, {"type": "ERROR", "object": {"code": 410, "reason": "Expired"}})
    assert gone.value.reason == "gone"
    with pytest.raises(_Restart) as other:
        apply_event(cache, {"type": "ERROR", "object": {"code": 500}})
    assert other.value.reason == "error"


def test_a_relist_is_the_whole_truth() -> None:
    cache = StatusCache()
    cache.replace_all([pod("a", 1), pod("b", 1)])
    cache.replace_all([pod("b", 2)])
    assert cache.get("a") is None and cache.vanished("a") is not None
    assert cache.phases() == {"Running": 1}


def test_unconfirmed_cache_says_since_when() -> None:
    cache = StatusCache()
    cache.confirm()
    cache.unconfirm("remote API server unreachable")
    assert not cache.confirmed
    assert "not confirmed since 20" in cache.describe_unconfirmed()
    assert "unreachable" in cache.describe_unconfirmed()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_vanished_pods_are_forgotten_after_an_hour() -> None:
    clock = FakeClock()
    cache = StatusCache(clock=clock)
    cache.upsert(pod("old", 1))
    cache.remove(pod("old", 2))
    clock.now += VANISHED_KEEP_SECONDS - 1
    cache.upsert(pod("new", 1))
    cache.remove(pod("new", 2))
    assert cache.vanished("old") is not None
    clock.now += 2  # "old" is now older than the bound; the next removal forgets it
    cache.upsert(pod("newer", 1))
    cache.remove(pod("newer", 2))
    assert cache.vanished("old") is None
    assert cache.vanished("new") is not None and cache.vanished("newer") is not None


def test_100000_create_delete_cycles_leave_the_cache_bounded() -> None:
    """The figure behind the README's "bounded" claim: memory after 100,000 pod
    lifecycles equals memory after VANISHED_MAX of them."""
    cache = StatusCache()

    def cycles(start: int, count: int) -> None:
        for i in range(start, start + count):
            uid = f"{i:08d}-0000-0000-0000-000000000000"
            cache.upsert(pod(uid, 1))
            cache.remove(pod(uid, 2))

    tracemalloc.start()
    try:
        cycles(0, VANISHED_MAX)
        full = tracemalloc.get_traced_memory()[0]
        cycles(VANISHED_MAX, 100_000 - VANISHED_MAX)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(cache) == 0
    assert cache.vanished_count() == VANISHED_MAX
    assert cache.vanished(f"{99_999:08d}-0000-0000-0000-000000000000") is not None
    # Same number of entries, about the same memory (hash tables resize in steps): was
    # ~290 B more per lifecycle, 29 MB after 100,000, before the bound.
    assert after < full * 1.25, (full, after)


def test_only_status_changes_count_as_changes() -> None:
    cache = StatusCache()
    first = pod("a", 1)
    assert cache.status_changed(first)  # a new pod
    cache.upsert(first)
    marked = pod("a", 2)
    marked["metadata"]["deletionTimestamp"] = "2026-11-28T10:00:00Z"
    assert not cache.status_changed(marked)  # the deletion mark alone
    assert cache.status_changed(pod("a", 3, "Succeeded"))


def full_pod() -> dict[str, Any]:
    """A remote pod as the API server sends it, with what the delete path reads."""
    uid = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
    when = "2026-11-28T10:00:00Z"
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": f"s-{uid}", "key": "a"}}}]
    env_from = [{"configMapRef": {"name": f"cm-{uid}"}}]
    volumes = [
        {"name": "cm", "configMap": {"name": f"cm-{uid}"}},
        {"name": "s", "secret": {"secretName": f"s-{uid}"}},
        {"name": "p", "projected": {"sources": [{"secret": {"name": f"ps-{uid}"}}]}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"web-{uid}",
            "namespace": "offloading-default",
            "uid": "remote-uid",
            "resourceVersion": "42",
            "generation": 1,
            "creationTimestamp": when,
            "deletionTimestamp": when,
            "deletionGracePeriodSeconds": 30,
            "labels": naming.ownership_labels(uid),
            "annotations": {
                naming.SOURCE_NAME_ANNOTATION: "web",
                "interlink.io/tcp-tunnel": "true",
            },
            "managedFields": [{"manager": "kubelet", "time": when}],
        },
        "spec": {
            "initContainers": [
                {"name": "init", "image": "i", "env": env, "restartPolicy": "Always"}
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": env,
                    "envFrom": env_from,
                    "resources": {"limits": {"cpu": "1"}},
                    "volumeMounts": [{"name": "cm", "mountPath": "/cm"}],
                }
            ],
            "volumes": volumes,
            "restartPolicy": "Never",
            "nodeName": "node-1",
            "tolerations": [{"operator": "Exists"}],
        },
        "status": {
            "phase": "Running",
            "reason": "R",
            "message": "M",
            "podIP": "10.244.0.9",
            "podIPs": [{"ip": "10.244.0.9"}],
            "hostIP": "10.0.0.1",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": when},
                {"type": "Ready", "status": "True", "lastTransitionTime": when},
                {"type": "Initialized", "status": "True", "reason": "x", "message": "y"},
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "state": {"running": {"startedAt": when}},
                    "lastState": {},
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "image": "busybox",
                    "imageID": "sha",
                    "containerID": "c://1",
                    "volumeMounts": [{"name": "cm", "mountPath": "/cm"}],
                }
            ],
        },
    }


def test_the_cache_keeps_what_its_readers_use_and_drops_the_rest() -> None:
    full = full_pod()
    cache = StatusCache()
    cache.upsert(copy.deepcopy(full))
    kept = cache.get("0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f")
    assert kept is not None
    meta, spec, status = kept["metadata"], kept["spec"], kept["status"]
    # The delete path, the orphan sweep and made_for: metadata as it was, minus the rest.
    for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp"):
        assert meta[key] == full["metadata"][key]
    assert meta["deletionTimestamp"] == full["metadata"]["deletionTimestamp"]
    assert meta["labels"] == full["metadata"]["labels"]
    assert meta["annotations"] == full["metadata"]["annotations"]
    assert spec["volumes"] == full["spec"]["volumes"]
    main, init = spec["containers"][0], spec["initContainers"][0]
    assert main["env"] == full["spec"]["containers"][0]["env"]
    assert main["envFrom"] == full["spec"]["containers"][0]["envFrom"]
    assert init["env"] == full["spec"]["initContainers"][0]["env"]
    assert init["restartPolicy"] == "Always"
    assert main["ports"] == full["spec"]["containers"][0]["ports"]
    assert (status["phase"], status["podIP"], status["reason"], status["message"]) == (
        "Running",
        "10.244.0.9",
        "R",
        "M",
    )
    assert status["containerStatuses"][0] == {
        k: v for k, v in full["status"]["containerStatuses"][0].items() if k != "volumeMounts"
    }
    # Dropped: what nobody reads.
    assert "managedFields" not in meta and "generation" not in meta
    assert set(spec) == {"initContainers", "containers", "volumes", "restartPolicy"}
    assert set(main) == {"name", "ports", "env", "envFrom"}
    assert "hostIP" not in status and "podIPs" not in status
    assert status["conditions"] == [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Initialized", "status": "True", "reason": "x", "message": "y"},
    ]


def test_tunnels_of_kept_pods_are_those_of_the_full_pods() -> None:
    full = full_pod()
    del full["metadata"]["deletionTimestamp"]  # a pod being deleted gets no tunnel
    cache = StatusCache()
    cache.replace_all([copy.deepcopy(full)])
    for annotated_only in (False, True):
        wanted = desired_tunnels([full], annotated_only=annotated_only)
        assert wanted and desired_tunnels(cache.pods(), annotated_only=annotated_only) == wanted


def test_status_changes_are_those_of_the_kept_fields() -> None:
    cache = StatusCache()
    cache.upsert(full_pod())
    later = full_pod()
    later["metadata"]["resourceVersion"] = "43"
    later["status"]["conditions"][1]["lastTransitionTime"] = "2026-11-28T11:00:00Z"
    later["status"]["podIPs"] = []
    assert not cache.status_changed(later)  # nothing /status or the tunnels read
    later["status"]["containerStatuses"][0]["restartCount"] = 1
    assert cache.status_changed(later)
