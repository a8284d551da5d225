"""``kubectl logs`` on LOCAL through the chain: kube-apiserver -> virtual kubelet ->
interLink -> sidecar ``/getLogs`` -> REMOTE pod log API -> kwok, which serves every
pod's log from one file (``LocalCluster.append_pod_log`` on REMOTE writes it). Lines are
unique per test, so earlier tests' lines in the shared file do not matter; the flags
checked are those kubectl users rely on: --tail, --timestamps, --since, --limit-bytes,
-f and --previous."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e import manifests
from tests.e2e.chain.topology import Chain
from tests.e2e.checks import running_pod, status
from tests.e2e.kubectl import Kubectl
from tests.e2e.submit import Submit

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240, func_only=True)]


def marker(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def ours(output: str, prefix: str) -> list[str]:
    """The lines of ``output`` that contain ``prefix`` (lines other tests wrote excluded)."""
    return [line for line in output.splitlines() if prefix in line]


@pytest.fixture
def running(kubectl: Kubectl, submit: Submit, node: str) -> str:
    """A Running pod on ``node``; its name."""
    name = submit(manifests.pod(manifests.unique_name("logs"), node))
    running_pod(kubectl, name)
    return name


def test_tail_returns_the_last_lines(chain: Chain, kubectl: Kubectl, running: str) -> None:
    prefix = marker("tail")
    lines = [f"{prefix} line {i}" for i in range(5)]
    for line in lines:
        chain.remote.append_pod_log(line)
    assert kubectl.logs(running, "--tail=2").splitlines() == lines[-2:]
    assert ours(kubectl.logs(running), prefix) == lines


def test_timestamps_carry_the_time_each_line_was_written(
    chain: Chain, kubectl: Kubectl, running: str
) -> None:
    line = marker("stamped")
    at = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    chain.remote.append_pod_log(line, at=at)
    [shown] = kubectl.logs(running, "--tail=1", "--timestamps").splitlines()
    stamp, _, text = shown.partition(" ")
    assert text == line
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")) == at, shown


def test_since_leaves_out_older_lines(chain: Chain, kubectl: Kubectl, running: str) -> None:
    prefix = marker("since")
    chain.remote.append_pod_log(f"{prefix} old", at=datetime.now(UTC) - timedelta(hours=2))
    chain.remote.append_pod_log(f"{prefix} new")
    assert ours(kubectl.logs(running, "--since=1h"), prefix) == [f"{prefix} new"]
    assert ours(kubectl.logs(running), prefix) == [f"{prefix} old", f"{prefix} new"]


def test_limit_bytes_cuts_the_output(chain: Chain, kubectl: Kubectl, running: str) -> None:
    """Alone: interLink 0.6.2 refuses --limit-bytes with --tail (400, "Both Tail and
    LimitBytes set"), which a real kubelet accepts."""
    chain.remote.append_pod_log(marker("bytes") + " " + "x" * 200)
    whole = kubectl.logs(running)
    cut = kubectl.logs(running, "--limit-bytes=17")
    assert len(cut.encode()) == 17, cut
    assert whole.startswith(cut)


def test_follow_delivers_a_line_written_after_it_started(
    chain: Chain, kubectl: Kubectl, running: str
) -> None:
    before, after = marker("before"), marker("after")
    chain.remote.append_pod_log(before)
    with kubectl.follow(running, "--tail=1") as follow:
        follow.wait_for_line(lambda line: line == before, timeout=30)
        chain.remote.append_pod_log(after)
        follow.wait_for_line(lambda line: line == after, timeout=30)
        assert follow.process.poll() is None, "a follow stays open"


def test_previous_shows_the_log_of_the_container_before_its_restart(
    chain: Chain, kubectl: Kubectl, submit: Submit, node: str
) -> None:
    name = submit(
        manifests.pod(
            manifests.unique_name("previous"), node, annotations={manifests.RESTART: "true"}
        )
    )
    kubectl.wait_pod(
        name,
        "restartCount 1",
        lambda p: any(c.get("restartCount") == 1 for c in status(p).get("containerStatuses") or []),
    )
    earlier, now = marker("earlier-life"), marker("this-life")
    chain.remote.append_pod_log(earlier, previous=True)
    chain.remote.append_pod_log(now)
    previous = kubectl.logs(name, "--previous")
    assert earlier in previous
    assert now not in previous
    current = kubectl.logs(name)
    assert now in current
    assert earlier not in current
