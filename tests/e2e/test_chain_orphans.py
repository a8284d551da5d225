"""A lost ``/delete`` through the real chain: the remote pod is found orphaned and reaped.

interLink sends ``/delete`` once and never again. Here the ``CreateGate`` in front of
``vk-gated``'s sidecar connection loses it (answers 502, as a down sidecar would), so
the local pod is gone while its remote pod runs on. The chain's sidecar runs with
``orphan_policy = delete`` and a 30 s window: the pod, no longer asked about while the
virtual node keeps polling its other pods, must be listed on ``/orphans`` first and then
reaped with everything of ours; a running pod and a finished pod whose local pods still
exist must be left alone.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.e2e import manifests, remote
from tests.e2e.chain.topology import GATED_NODE, ORPHAN_AFTER_SECONDS, Chain
from tests.e2e.checks import ended_pod, gone_pod, running_pod, status
from tests.e2e.deadlines import wait_for
from tests.e2e.kubectl import Kubectl
from tests.e2e.submit import Submit

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420, func_only=True)]

# Judged after the window (the pod unpolled, its node polling), reaped one sweep later
# (a quarter of the window), plus the virtual kubelet's 5 s ticks: generous.
REAP_SECONDS = ORPHAN_AFTER_SECONDS * 4 + 60


def orphans(chain: Chain) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(chain.sidecar.ops_url + "/orphans", timeout=5) as response:
        report = json.loads(response.read())
    return {o["pod_uid"]: o for o in report["orphans"]}


def test_a_pod_whose_delete_was_lost_is_reported_then_reaped(
    chain: Chain, kubectl: Kubectl, submit: Submit
) -> None:
    lost = submit(manifests.pod(manifests.unique_name("lost"), GATED_NODE))
    alive = submit(manifests.pod(manifests.unique_name("alive"), GATED_NODE))
    done = submit(
        manifests.pod(
            manifests.unique_name("done"),
            GATED_NODE,
            annotations={manifests.EXIT_CODE: "0"},
            restart_policy="Never",
        )
    )
    lost_uid = running_pod(kubectl, lost)["metadata"]["uid"]
    alive_uid = running_pod(kubectl, alive)["metadata"]["uid"]
    done_pod = ended_pod(kubectl, done)
    assert status(done_pod)["phase"] == "Succeeded"
    done_uid = done_pod["metadata"]["uid"]

    chain.gate.lose_delete(lost)
    kubectl.run("delete", "pod", lost, "--wait=false")
    gone_pod(kubectl, lost)
    assert remote.remote_pods(chain.remote, lost_uid), "the remote pod runs on"

    report = wait_for(
        "the orphan to be listed on /orphans",
        lambda: orphans(chain),
        lambda found: lost_uid in found,
        timeout=REAP_SECONDS,
        context=chain.diagnostics,
    )
    listed = report[lost_uid]
    assert listed["local"]["name"] == lost and listed["evidence"] == "unpolled", listed
    assert listed["node"] == GATED_NODE
    assert listed["reap_at"] is not None
    wait_for(
        "the orphan and everything of it to be reaped",
        lambda: remote.leftovers(chain.remote, pod_uid=lost_uid),
        lambda left: not left,
        timeout=REAP_SECONDS,
        context=chain.diagnostics,
    )
    assert lost_uid not in orphans(chain)
    # The pods whose local pods exist are untouched: the running one still polled, the
    # finished one never polled again (a terminal pod is never judged unpolled).
    assert remote.remote_pods(chain.remote, alive_uid)
    assert remote.remote_pods(chain.remote, done_uid)
    assert not {alive_uid, done_uid} & set(orphans(chain))
    pod = kubectl.get_pod(done)
    assert pod is not None and status(pod)["phase"] == "Succeeded"
