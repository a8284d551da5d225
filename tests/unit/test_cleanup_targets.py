"""What a delete removes by name, and how often a namespace is looked at for removal.

The delete path finds a pod's copied ConfigMaps and Secrets from the cached remote pod
alone (no LIST): every copy a create writes must be found that way, for every pod shape
the virtual kubelet sends, and nothing else. The namespace reaper looks at a namespace
at most once per window, and not at all while the status cache holds a pod of ours in it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidecar.core import naming
from sidecar.offload.cleanup import _mounted_copies
from sidecar.offload.namespace_reaper import NamespaceReaper
from sidecar.remote.errors import RemoteError
from sidecar.status.cache import StatusCache
from tests import podshapes
from tests.unit.background import running, until
from tests.unit.test_translate import UID, plan_for


@pytest.mark.parametrize("shape", sorted(podshapes.SHAPES))
def test_every_copy_a_create_writes_is_found_from_the_pod_alone(shape: str) -> None:
    plan = plan_for(podshapes.SHAPES[shape](UID))
    written = {(o["kind"], o["metadata"]["name"]) for o in [*plan.config_maps, *plan.secrets]}
    assert set(_mounted_copies(plan.pod, UID)) == written


def test_many_copies_are_all_found() -> None:
    plan = plan_for(podshapes.many_config_maps(UID, count=40))
    assert len(_mounted_copies(plan.pod, UID)) == len(plan.config_maps) >= 40


def test_objects_not_made_for_the_pod_are_never_targets() -> None:
    pod: dict[str, Any] = {
        "spec": {
            "volumes": [
                {"name": "a", "configMap": {"name": "shared-settings"}},
                {"name": "b", "secret": {"secretName": "registry-credentials"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": f"data-{UID}"}},
                {"name": "d", "configMap": {"name": naming.scoped_name("mine", UID)}},
            ]
        }
    }
    assert _mounted_copies(pod, UID) == [("ConfigMap", naming.scoped_name("mine", UID))]


def remote_pod(namespace: str, uid: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"p-{uid}",
            "namespace": namespace,
            "resourceVersion": "1",
            "labels": naming.ownership_labels(uid),
        }
    }


class Checks:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fail = False

    async def __call__(self, namespace: str) -> None:
        self.seen.append(namespace)
        if self.fail:
            raise RemoteError(0, "Unreachable", "connection refused")


async def test_a_burst_of_finished_deletes_checks_the_namespace_once_per_window() -> None:
    cache = StatusCache()
    cache.confirm()
    checks = Checks()
    reaper = NamespaceReaper(checks, cache, window=3600)
    async with running(reaper.run_forever()):
        for _ in range(50):
            reaper.note("offloading-a")
        await until(lambda: checks.seen)
        reaper.note("offloading-a")  # within the window: waits for it
        reaper.note("offloading-b")  # another namespace: its own window
        await until(lambda: "offloading-b" in checks.seen)
    assert checks.seen == ["offloading-a", "offloading-b"]


async def test_a_namespace_the_cache_still_has_pods_in_is_not_read() -> None:
    cache = StatusCache()
    cache.upsert(remote_pod("offloading-a", "u1"))
    cache.confirm()
    checks = Checks()
    reaper = NamespaceReaper(checks, cache, window=0.05)
    async with running(reaper.run_forever()):
        reaper.note("offloading-a")
        reaper.note("offloading-b")
        await until(lambda: checks.seen == ["offloading-b"])
        cache.remove(
            remote_pod("offloading-a", "u1")
            | {"metadata": {**remote_pod("offloading-a", "u1")["metadata"], "resourceVersion": "2"}}
        )
        reaper.note("offloading-a")  # the last pod's delete notes it again
        await until(lambda: "offloading-a" in checks.seen)


async def test_a_check_that_fails_is_tried_again_in_the_next_window() -> None:
    cache = StatusCache()
    cache.confirm()
    checks = Checks()
    checks.fail = True
    reaper = NamespaceReaper(checks, cache, window=0.05)
    async with running(reaper.run_forever()):
        reaper.note("offloading-a")
        await until(lambda: len(checks.seen) >= 2)
        checks.fail = False
        count = len(checks.seen)
        await until(lambda: len(checks.seen) == count + 1)
        seen = checks.seen.count("offloading-a")
        # Succeeded: not looked at again without a new note (a later pass, for another
        # namespace, leaves it alone).
        await asyncio.sleep(0.1)  # more than a window: it would be due again by now
        reaper.note("offloading-z")
        await until(lambda: "offloading-z" in checks.seen)
        assert checks.seen.count("offloading-a") == seen
