"""What one create and one delete cost on the remote API server, counted in its audit log.

The write path must not grow with the namespace: a plain pod's create in a namespace the
sidecar knows is one request (the POST); a delete is one DELETE per object of the pod,
by name (no LIST, however many pods share the namespace), and the namespace is removed
once, when its last pod is gone, not once per deleted pod.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest

from tests import podshapes
from tests.fixtures.audit import SidecarRequests
from tests.fixtures.sidecar_process import SidecarProcess
from tests.integration.plugin_client import call, metric_value, poll
from tests.integration.test_offloading import namespace_exists
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane


def body_in(namespace: str, shape: str = "") -> dict[str, Any]:
    uid = str(uuid.uuid4())
    if shape:
        body = podshapes.SHAPES[shape](uid)
        body["pod"]["metadata"]["namespace"] = namespace
        return body
    pod = podshapes.pod(
        uid, f"plain-{uid[:8]}", {"containers": [podshapes.container("main")]}, namespace=namespace
    )
    return podshapes.body(pod)


async def created(sidecar: SidecarProcess, body: dict[str, Any]) -> None:
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer


async def journal_empty(sidecar: SidecarProcess) -> float:
    return await asyncio.to_thread(metric_value, sidecar, "sidecar_janitor_pending_deletes")


async def test_creates_and_deletes_cost_one_request_per_object(
    sidecar_module: SidecarProcess, control_plane: LocalCluster
) -> None:
    local = f"cost-{uuid.uuid4().hex[:8]}"
    remote = f"offloading-{local}"
    requests = SidecarRequests(control_plane, remote)
    first, mounted = body_in(local), body_in(local, "shared-volumes")
    others = [body_in(local) for _ in range(8)]
    await created(sidecar_module, first)  # makes the namespace known

    requests.mark()
    for body in [mounted, *others]:
        await created(sidecar_module, body)
    counted = requests.since_mark()
    copies = counted["create configmaps"] + counted["create secrets"]
    assert copies > 0, counted
    # One POST per object: nothing read before the writes.
    assert counted == Counter(
        {
            "create pods": 9,
            "create configmaps": counted["create configmaps"],
            "create secrets": counted["create secrets"],
        }
    ), counted

    requests.mark()
    for body in (first, mounted):
        code, answer = await call(sidecar_module, "POST", "/delete", body["pod"])
        assert code == 200, answer
    await poll("the deletes finished", lambda: journal_empty(sidecar_module), lambda n: n == 0)
    counted = requests.since_mark()
    # The pods and the mounted copies, by name: no LIST, though 8 pods share the namespace.
    assert counted == Counter(
        {
            "delete pods": 2,
            "delete configmaps": counted["delete configmaps"],
            "delete secrets": counted["delete secrets"],
        }
    ), counted
    assert counted["delete configmaps"] + counted["delete secrets"] == copies

    requests.mark()
    answers = await asyncio.gather(
        *(call(sidecar_module, "POST", "/delete", body["pod"]) for body in others)
    )
    assert {code for code, _ in answers} == {200}, answers
    await poll(
        "the namespace removed",
        lambda: asyncio.to_thread(namespace_exists, control_plane, remote),
        lambda exists: not exists,
    )
    await poll("the deletes finished", lambda: journal_empty(sidecar_module), lambda n: n == 0)
    counted = requests.since_mark()
    assert counted["delete namespaces"] == 1, counted
    assert counted["delete pods"] == len(others), counted
    # The emptiness check reads the namespace and at most one object per kind, once.
    assert counted["get namespaces"] <= 2 and counted["list pods"] <= 2, counted
