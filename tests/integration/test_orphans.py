"""The janitor's orphan sweep against the real control plane, run in-process with the
sidecar's own credentials: ConfigMaps and Secrets of ours whose pod is gone are deleted
and counted; everything else (young objects, objects of a live pod, of a journalled
delete, of a create in flight) is kept."""

from __future__ import annotations

import asyncio
import urllib.error
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from prometheus_client import CollectorRegistry

from metrics import Metrics, make_metrics
from sidecar.core import naming
from sidecar.offload.cleanup import Cleaner
from sidecar.offload.journal import DeleteJournal
from sidecar.offload.locks import ActivityCounter, KeyedLocks
from sidecar.offload.orphans import sweep_orphans
from sidecar.remote.cluster import RemoteCluster
from sidecar.settings import OffloadingSettings
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane


@pytest.fixture
async def remote(control_plane: LocalCluster) -> AsyncIterator[RemoteCluster]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(control_plane.sidecar_kubeconfig), client_configuration=configuration
    )
    cluster = RemoteCluster(client.ApiClient(configuration=configuration), timeout=10)
    try:
        yield cluster
    finally:
        await cluster.close()


def _owned(kind: str, name: str, namespace: str, uid: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": naming.scoped_name(name, uid),
            "namespace": namespace,
            "labels": naming.ownership_labels(uid),
            "annotations": naming.ownership_annotations(
                source_uid=uid, name=name, namespace="default"
            ),
        },
    }
    if kind == "Pod":
        obj["spec"] = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
    else:
        obj["data"] = {"key": "dmFsdWU=" if kind == "Secret" else "value"}
    return obj


_PLURAL = {"Pod": "pods", "ConfigMap": "configmaps", "Secret": "secrets"}


def _path(obj: dict[str, Any], *, named: bool = True) -> str:
    meta = obj["metadata"]
    base = f"/api/v1/namespaces/{meta['namespace']}/{_PLURAL[obj['kind']]}"
    return f"{base}/{meta['name']}" if named else base


def _exists(cluster: LocalCluster, obj: dict[str, Any]) -> bool:
    try:
        cluster.request("GET", _path(obj))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise
    return True


def _reaped(metrics: Metrics, kind: str) -> float:
    value = metrics.registry.get_sample_value(
        "sidecar_janitor_orphans_reaped_total", {"kind": kind}
    )
    return value or 0.0


async def test_the_sweep_reaps_orphans_and_keeps_everything_else(
    control_plane: LocalCluster, remote: RemoteCluster, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    orphan_ns = f"orphans-{suffix}"
    control_plane.request(
        "POST",
        "/api/v1/namespaces",
        {
            "metadata": {
                "name": orphan_ns,
                "labels": {naming.OFFLOADING_LABEL: naming.OFFLOADING_VALUE},
            }
        },
    )
    orphan_uid, alive_uid, pending_uid, creating_uid = (str(uuid.uuid4()) for _ in range(4))
    orphans = [
        _owned("ConfigMap", "config", orphan_ns, orphan_uid),
        _owned("Secret", "token", orphan_ns, orphan_uid),
    ]
    alive_pod = _owned("Pod", "alive", "default", alive_uid)
    kept = [
        _owned("ConfigMap", "config", "default", alive_uid),
        _owned("ConfigMap", "config", "default", pending_uid),
        _owned("Secret", "token", "default", creating_uid),
    ]
    creating_pod = _owned("Pod", "creating", "default", creating_uid)
    created = [*orphans, alive_pod, *kept]
    for obj in created:
        control_plane.request("POST", _path(obj, named=False), obj)

    metrics = make_metrics(CollectorRegistry(), version="test")
    journal = DeleteJournal(tmp_path)
    journal.load()
    await journal.add(pending_uid, namespace="default", name="pending", tombstone=True)
    locks = KeyedLocks()
    cleaner = Cleaner(remote, ActivityCounter())
    waiting_for_create = asyncio.Event()

    def hold(uid: str) -> AbstractAsyncContextManager[None]:
        if uid == creating_uid:
            waiting_for_create.set()
        return locks.hold(uid)

    try:
        # Younger than the production grace: nothing of this test is touched.
        await sweep_orphans(
            remote,
            grace=OffloadingSettings().orphan_objects_grace_seconds,
            hold=hold,
            journal=journal,
            metrics=metrics,
            cleaner=cleaner,
        )
        assert all(_exists(control_plane, obj) for obj in created)
        assert not waiting_for_create.is_set()

        # Grace 0: everything is old enough. A create for ``creating_uid`` is in flight
        # (it holds the uid's lock) and makes its pod before it lets go: the sweep waits
        # for it, sees the pod, and keeps the Secret.
        async with locks.hold(creating_uid):
            sweep = asyncio.create_task(
                sweep_orphans(
                    remote,
                    grace=0,
                    hold=hold,
                    journal=journal,
                    metrics=metrics,
                    cleaner=cleaner,
                )
            )
            async with asyncio.timeout(30):
                await waiting_for_create.wait()
            await asyncio.to_thread(
                control_plane.request, "POST", _path(creating_pod, named=False), creating_pod
            )
            created.append(creating_pod)
        async with asyncio.timeout(30):
            reaped = await sweep

        for obj in orphans:
            assert not _exists(control_plane, obj), obj["metadata"]["name"]
        for obj in [*kept, alive_pod, creating_pod]:
            assert _exists(control_plane, obj), obj["metadata"]["name"]
        # Counted (other tests' leftovers in the shared cluster may add to the counts).
        assert reaped["ConfigMap"] >= 1 and reaped["Secret"] >= 1
        assert _reaped(metrics, "ConfigMap") == reaped["ConfigMap"]
        assert _reaped(metrics, "Secret") == reaped["Secret"]
        # The namespace the orphans kept alive is ours and empty now: deleted.
        namespace = await remote.read_namespace(orphan_ns)
        assert namespace is None or namespace["status"]["phase"] == "Terminating"
    finally:
        for obj in created:
            try:
                control_plane.request("DELETE", _path(obj))
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
        try:
            control_plane.request("DELETE", f"/api/v1/namespaces/{orphan_ns}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
