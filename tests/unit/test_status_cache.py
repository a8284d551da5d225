"""The status cache and the watch event rules (410 Gone forces a re-list)."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.offload import naming
from sidecar.status.cache import StatusCache
from sidecar.status.watcher import _Restart, apply_event


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
