"""The lifecycle races of one pod, forced through the real chain and seen with kubectl.

interLink's virtual kubelet stores a pod at once and polls ``/status`` for it every 5 s
while its ``/create`` is still running; it sends ``/create`` and ``/delete`` from
goroutines, so a delete can reach the sidecar during or before its create. Each order
is forced with a real slow step, never hoped for:

* during: a validating admission webhook on REMOTE holds the remote pod's create
  (``tests/fixtures/admission_gate.py``): the sidecar is inside ``/create``;
* before: the ``CreateGate`` between ``vk-gated``'s interLink and the sidecar holds the
  ``/create`` itself, so the ``/delete`` overtakes it on the way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import manifests
from tests.e2e.chain.topology import GATED_NODE, Chain
from tests.e2e.checks import assert_remote_clean, gone_pod, running_pod, state_of, status
from tests.e2e.deadlines import seconds, wait_for
from tests.e2e.kubectl import Kubectl, Pod
from tests.e2e.submit import Submit
from tests.fixtures.admission_gate import AdmissionGate
from tests.integration.plugin_client import metric_value

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300, func_only=True)]

ARRIVAL_SECONDS = 60.0
STATUS_TICK_SECONDS = 30.0
"""The virtual kubelet polls every 5 s: a poll lands within this (generous) time."""


@pytest.fixture(scope="module")
def webhook(chain: Chain) -> Iterator[AdmissionGate]:
    gate = AdmissionGate(chain.remote)
    gate.start()
    try:
        yield gate
    finally:
        gate.stop()


def deletes(chain: Chain) -> float:
    return sum(
        metric_value(chain.sidecar, f'sidecar_offload_deletes_total{{outcome="{outcome}"}}')
        for outcome in ("done", "deferred")
    )


def delete_reaching_the_sidecar(chain: Chain, kubectl: Kubectl, name: str) -> None:
    """``kubectl delete`` the pod and wait until the sidecar has taken its ``/delete``."""
    before = deletes(chain)
    kubectl.run("delete", "pod", name, "--wait=false")
    wait_for(
        "the sidecar to accept the /delete",
        lambda: deletes(chain),
        lambda value: value > before,
        timeout=STATUS_TICK_SECONDS,
        context=chain.diagnostics,
    )


def creating_seen_locally(pod: Pod | None) -> bool:
    """The virtual kubelet applied a 'being created' answer to the local pod."""
    statuses = status(pod).get("containerStatuses") or []
    return any(
        "being created" in ((c.get("state") or {}).get("waiting") or {}).get("message", "")
        for c in statuses
    )


def test_a_pod_polled_while_its_create_is_held_ends_running_not_failed(
    chain: Chain, kubectl: Kubectl, submit: Submit, webhook: AdmissionGate
) -> None:
    name = manifests.unique_name("slow")
    with webhook.hold(pod_name=name) as held:
        submit(manifests.pod(name, "vk-tcp"))
        held.wait_arrived(seconds(ARRIVAL_SECONDS))
        # The sidecar is inside /create, its pod write held. The virtual kubelet keeps
        # polling: it must be told "being created" (a terminated answer fails it for good).
        pod = kubectl.wait_pod(
            name,
            "the local pod to show 'being created'",
            creating_seen_locally,
            timeout=STATUS_TICK_SECONDS,
        )
        assert status(pod).get("phase") == "Pending"
        held.release()
    pod = running_pod(kubectl, name)
    assert [state_of(c) for c in status(pod)["containerStatuses"]] == ["running"]


def test_a_delete_during_the_create_leaves_nothing_and_no_running_pod(
    chain: Chain, kubectl: Kubectl, submit: Submit, webhook: AdmissionGate
) -> None:
    name = manifests.unique_name("deldur")
    with webhook.hold(pod_name=name) as held:
        submit(manifests.pod(name, "vk-tcp"))
        held.wait_arrived(seconds(ARRIVAL_SECONDS))
        delete_reaching_the_sidecar(chain, kubectl, name)
        held.release()  # the remote pod is written after its delete ...
    gone_pod(kubectl, name)
    assert webhook.admitted_pods.count(name) == 1
    assert_remote_clean(chain)  # ... and removed after it


def test_a_delete_before_the_create_means_nothing_is_written(
    chain: Chain, kubectl: Kubectl, submit: Submit, webhook: AdmissionGate
) -> None:
    name = manifests.unique_name("delfirst")
    with chain.gate.hold(name) as held:
        submit(manifests.pod(name, GATED_NODE))
        held.wait_arrived(seconds(ARRIVAL_SECONDS))  # /create held before the sidecar
        delete_reaching_the_sidecar(chain, kubectl, name)  # first, its create held
        refused = metric_value(
            chain.sidecar, 'sidecar_offload_creates_total{outcome="deleted_first"}'
        )
        held.release()
    wait_for(
        "the late /create to be refused",
        lambda: metric_value(
            chain.sidecar, 'sidecar_offload_creates_total{outcome="deleted_first"}'
        ),
        lambda value: value == refused + 1,
        timeout=STATUS_TICK_SECONDS,
        context=chain.diagnostics,
    )
    gone_pod(kubectl, name)
    assert name not in webhook.admitted_pods  # no remote pod was ever created
    assert_remote_clean(chain)
