"""/status answers kept encoded in the status cache, through the real plugin app: made
once per change of the remote pod (a watch event, a re-list) and only given to the
request they were made for; answers that carry the time are never kept. And the cache's
slim pods answer exactly as the API server's full pods do."""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from metrics import make_metrics
from sidecar.api.server import make_plugin_app
from sidecar.core import naming
from sidecar.core.pods import PodRef
from sidecar.remote.health import RemoteHealth
from sidecar.settings import load
from sidecar.status import mapping
from sidecar.status.cache import StatusCache
from sidecar.status.watcher import apply_event

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]
UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
REF = PodRef(uid=UID, name="p", namespace="default")
SETTINGS = load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock"})
STARTED = "2026-11-21T11:00:00Z"


class FakeJournal:
    def deleted_at(self, uid: str) -> float | None:
        return None


class FakeOffloader:
    journal = FakeJournal()

    def creating_since(self, uid: str) -> float | None:
        return None


def container_status(name: str, state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "state": state,
        "lastState": {},
        "ready": "running" in state,
        "restartCount": 0,
        "image": "docker.io/library/busybox:1.36",
        "imageID": "docker.io/library/busybox@sha256:abc",
        "containerID": f"containerd://{name}",
        "started": "running" in state,
        # Fields of newer API servers that /status does not pass on.
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "resources": {},
        **extra,
    }


def remote_pod(
    version: int,
    *,
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    owner: tuple[str, str] | None = ("default", "p"),
) -> dict[str, Any]:
    """A remote pod as the API server sends it (managedFields, defaulted fields and all)."""
    annotations = {"example.com/note": "kept"}
    if owner is not None:
        annotations |= naming.ownership_annotations(
            source_uid=UID, namespace=owner[0], name=owner[1]
        )
    when = "2026-11-21T10:59:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"p-{UID}",
            "namespace": "offloading-default",
            "uid": "remote-uid",
            "resourceVersion": str(version),
            "generation": 1,
            "creationTimestamp": when,
            "labels": naming.ownership_labels(UID),
            "annotations": annotations,
            "managedFields": [{"manager": "kubelet", "time": when, "fieldsV1": {"f:status": {}}}],
        },
        "spec": {
            "initContainers": [
                {"name": "setup", "image": "busybox", "resources": {}},
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {
                            "name": "A",
                            "valueFrom": {"configMapKeyRef": {"name": f"cm-{UID}", "key": "a"}},
                        }
                    ],
                    "envFrom": [{"secretRef": {"name": f"s-{UID}"}}],
                    "resources": {"requests": {"cpu": "1"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "Always",
                },
                {"name": "side", "image": "busybox"},
            ],
            "volumes": [
                {"name": "cm", "configMap": {"name": f"cm-{UID}"}},
                {"name": "s", "secret": {"secretName": f"s-{UID}"}},
                {
                    "name": "proj",
                    "projected": {"sources": [{"configMap": {"name": f"p-{UID}"}}]},
                },
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            ],
            "restartPolicy": "Always",
            "nodeName": "node-1",
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "x", "operator": "Exists", "effect": "NoExecute"}],
        },
        "status": {
            "phase": phase,
            "conditions": conditions
            if conditions is not None
            else [
                {"type": t, "status": "True", "lastTransitionTime": when, "lastProbeTime": None}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.7",
            "podIPs": [{"ip": "10.244.0.7"}],
            "startTime": when,
            "qosClass": "Burstable",
            "initContainerStatuses": init_statuses
            if init_statuses is not None
            else [
                container_status("setup", {"terminated": {"exitCode": 0, "reason": "Completed"}}),
                container_status("proxy", {"running": {"startedAt": STARTED}}),
            ],
            "containerStatuses": statuses
            if statuses is not None
            else [
                container_status("main", {"running": {"startedAt": STARTED}}),
                container_status("side", {"running": {"startedAt": STARTED}}),
            ],
        },
    }


def local_pod(
    *containers: str,
    name: str = "p",
    restart_policy: str = "Always",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": UID,
            "annotations": annotations or {},
        },
        "spec": {
            "initContainers": [
                {"name": "setup", "image": "busybox"},
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
            ],
            "containers": [{"name": c, "image": "busybox"} for c in containers or ("main",)],
            "restartPolicy": restart_policy,
        },
    }


def key_of(local: dict[str, Any], ref: PodRef = REF) -> object:
    return (ref, mapping.read_local(local).key())


@pytest.fixture
def cache() -> StatusCache:
    cache = StatusCache()
    cache.confirm()
    return cache


@pytest.fixture
async def client(aiohttp_client: ClientFactory, cache: StatusCache) -> TestClient[Any, Any]:
    health = RemoteHealth()
    health.record(up=True, detail="ok")
    app = make_plugin_app(
        remote=cast(Any, None),
        offloader=cast(Any, FakeOffloader()),
        cache=cache,
        health=health,
        offloading=SETTINGS.offloading,
        metrics=make_metrics(CollectorRegistry(), version="t"),
        log_requests=False,
    )
    return await aiohttp_client(app)


async def ask(client: TestClient[Any, Any], *pods: dict[str, Any]) -> tuple[bytes, list[Any]]:
    response = await client.get("/status", json=list(pods))
    raw = await response.read()
    assert response.status == 200, raw
    assert response.content_type == "application/json"
    return raw, json.loads(raw)


def states(answer: dict[str, Any]) -> list[str]:
    return [next(iter(c["state"])) for c in answer["containers"]]


async def test_an_answer_is_kept_until_a_watch_event_changes_the_pod(
    client: TestClient[Any, Any], cache: StatusCache
) -> None:
    local = local_pod("main", "side")
    apply_event(cache, {"type": "ADDED", "object": remote_pod(5)})
    raw, [answer] = await ask(client, local)
    assert states(answer) == ["running", "running"]
    kept = cache.get(UID)
    assert kept is not None and b"[" + (cache.answer(UID, kept, key_of(local)) or b"") + b"]" == raw
    again, _ = await ask(client, local)
    assert again == raw

    # The watch sees a container exit (restartPolicy Always: it restarts).
    exited = container_status("side", {"terminated": {"exitCode": 2, "reason": "Error"}})
    running = container_status("main", {"running": {"startedAt": STARTED}})
    apply_event(cache, {"type": "MODIFIED", "object": remote_pod(6, statuses=[running, exited])})
    assert kept is not None and cache.answer(UID, kept, key_of(local)) is None
    changed, [answer] = await ask(client, local)
    assert changed != raw
    side = answer["containers"][1]
    assert side["state"]["waiting"]["reason"] == mapping.RESTARTING_REASON
    assert side["lastState"]["terminated"]["exitCode"] == 2

    # An older event (a late create answer) changes nothing, and keeps the answer.
    cache.upsert(remote_pod(4))
    assert (await ask(client, local))[0] == changed

    apply_event(cache, {"type": "DELETED", "object": remote_pod(7, statuses=[running, exited])})
    _, [answer] = await ask(client, local)
    assert answer["JID"] == ""
    for entry in answer["containers"]:
        assert entry["state"]["terminated"]["reason"] == mapping.DELETED_REASON


async def test_a_relist_changes_the_answer(
    client: TestClient[Any, Any], cache: StatusCache
) -> None:
    local = local_pod("main", "side")
    cache.replace_all([remote_pod(5)])
    raw, _ = await ask(client, local)
    exited = container_status("main", {"terminated": {"exitCode": 0, "reason": "Completed"}})
    side = container_status("side", {"running": {"startedAt": STARTED}})
    cache.replace_all([remote_pod(9, statuses=[exited, side])])
    changed, [answer] = await ask(client, local)
    assert changed != raw
    assert answer["containers"][0]["lastState"]["terminated"]["reason"] == "Completed"


async def test_another_request_about_the_same_pod_gets_its_own_answer(
    client: TestClient[Any, Any], cache: StatusCache
) -> None:
    exited = container_status("main", {"terminated": {"exitCode": 1, "reason": "Error"}})
    side = container_status("side", {"running": {"startedAt": STARTED}})
    cache.upsert(remote_pod(5, statuses=[exited, side]))
    restarted = local_pod("main", "side")
    never = local_pod("main", "side", restart_policy="Never")
    only_main = local_pod("main")
    side_local = local_pod("main", "side", annotations={mapping.DISABLE_OFFLOAD_CONTAINERS: "side"})
    no_sidecar = local_pod("main", "side")
    no_sidecar["spec"]["initContainers"][1].pop("restartPolicy")
    for _ in range(2):  # the second round is answered from what was kept (the last one)
        _, [a] = await ask(client, restarted)
        assert states(a) == ["waiting", "running"]
        _, [b] = await ask(client, never)
        assert states(b) == ["terminated", "running"]
        _, [c] = await ask(client, only_main)
        assert [e["name"] for e in c["containers"]] == ["main"]
        _, [d] = await ask(client, side_local)
        assert [e["name"] for e in d["containers"]] == ["main"]
        _, [e] = await ask(client, no_sidecar)
        assert "running" in e["initContainers"][1]["state"]  # not a native sidecar here
        _, [f, g] = await ask(client, restarted, never)
        assert (states(f), states(g)) == (["waiting", "running"], ["terminated", "running"])


async def test_the_name_of_the_request_is_answered(
    client: TestClient[Any, Any], cache: StatusCache
) -> None:
    """A remote pod without source annotations (an older plugin) is the pod of its uid
    under any name: each request is answered with its own name."""
    cache.upsert(remote_pod(5, owner=None))
    _, [p] = await ask(client, local_pod("main", name="p"))
    _, [q] = await ask(client, local_pod("main", name="q"))
    assert (p["name"], q["name"]) == ("p", "q")
    assert p["JID"] == q["JID"] == "remote-uid"
    # With them, another name is another local pod: not this remote pod's answer.
    cache.upsert(remote_pod(6))
    _, [q] = await ask(client, local_pod("main", name="q"))
    assert (q["name"], q["JID"]) == ("q", "")


async def test_answers_that_carry_the_time_are_not_kept(
    client: TestClient[Any, Any], cache: StatusCache
) -> None:
    never_ran = container_status("side", {"waiting": {"reason": "PodInitializing"}})
    failed = container_status("main", {"terminated": {"exitCode": 3, "reason": "Error"}})
    cache.upsert(remote_pod(5, phase="Failed", statuses=[failed, never_ran]))
    local = local_pod("main", "side")
    _, [answer] = await ask(client, local)
    side = answer["containers"][1]["state"]["terminated"]
    assert side["exitCode"] == 3 and side["finishedAt"].endswith("Z")  # "now"
    kept = cache.get(UID)
    assert kept is not None and cache.answer(UID, kept, key_of(local)) is None

    # Local-only containers reported finished with the offloaded ones: "now" too.
    done = container_status("main", {"terminated": {"exitCode": 0, "reason": "Completed"}})
    cache.upsert(remote_pod(6, statuses=[done]))
    local = local_pod(
        "main",
        "side",
        restart_policy="Never",
        annotations={mapping.DISABLE_OFFLOAD_CONTAINERS: "side"},
    )
    _, [answer] = await ask(client, local)
    assert answer["containers"][1]["state"]["terminated"]["reason"] == mapping.LOCAL_ONLY_REASON
    kept = cache.get(UID)
    assert kept is not None and cache.answer(UID, kept, key_of(local)) is None


def _shapes() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(remote pod, local pod) pairs covering the mapping's branches."""
    running = container_status("main", {"running": {"startedAt": "2026-11-21T11:00:00+00:00"}})
    exited = container_status(
        "side",
        {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-21T11:30:00"}},
        restartCount=3,
        lastState={"terminated": {"exitCode": 1, "startedAt": STARTED}},
    )
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/2 nodes are available",
        "lastTransitionTime": STARTED,
    }
    pending_init = container_status("proxy", {"waiting": {"reason": "PodInitializing"}})
    return [
        (remote_pod(1), local_pod("main", "side")),
        (remote_pod(1, statuses=[running, exited]), local_pod("main", "side")),
        (
            remote_pod(1, statuses=[running, exited]),
            local_pod("main", "side", restart_policy="Never"),
        ),
        (
            remote_pod(
                1, phase="Pending", statuses=[], init_statuses=[], conditions=[unschedulable]
            ),
            local_pod("main", "side"),
        ),
        (
            remote_pod(1, phase="Pending", statuses=[], init_statuses=[pending_init]),
            local_pod("main", "side"),
        ),
        (
            remote_pod(1, phase="Failed", statuses=[running, exited]),
            local_pod("main", "side", annotations={mapping.DISABLE_OFFLOAD_CONTAINERS: "x"}),
        ),
    ]


@pytest.mark.parametrize(("remote", "local"), _shapes())
async def test_slim_cached_pods_answer_as_the_full_pods_do(
    client: TestClient[Any, Any], cache: StatusCache, remote: dict[str, Any], local: dict[str, Any]
) -> None:
    now = datetime.now(UTC)
    expected = mapping.pod_status(local, REF, copy.deepcopy(remote), remote_location="x", now=now)
    cache.upsert(remote)
    assert "managedFields" not in cache.get(UID)["metadata"]  # type: ignore[index]
    for _ in range(2):  # made, then kept
        _, [answer] = await ask(client, local)
        assert answer == expected
