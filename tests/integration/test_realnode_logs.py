"""/getLogs from real CRI log files, on the real node, through the sidecar: tail, byte
limits, timestamps, since (time and seconds), previous instances and follow.

One pod (restartPolicy OnFailure) with three containers, created when the module starts:

* ``lines`` prints three ``early`` lines, sleeps ``GAP_SECONDS``, prints three ``late``
  lines, sleeps;
* ``restarts`` prints a random value; its first instance exits 5 (restarted at once,
  the first restart has no back-off), its second sleeps: two instances, two values;
* ``ticker`` prints ``waiting for go`` and waits for a TCP connection on port 9000 of
  the pod's IP (reachable from the host over the node's bridge); the test connects
  while following its log, then it prints five ``tick`` lines and ``bye`` and exits 0
  (not restarted: OnFailure).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import podshapes
from tests.deadlines import scaled
from tests.fixtures.sidecar_process import SidecarProcess
from tests.http_client import client_session
from tests.integration.plugin_client import log_request, metric_value, poll
from tests.localcluster import LocalCluster
from tests.realnode_pods import (
    RANDOM,
    Offloaded,
    container,
    container_status,
    create_all,
    delete_all,
    pod,
    state_of,
)

pytestmark = [pytest.mark.controlplane, pytest.mark.realnode]

EARLY = ["early 1", "early 2", "early 3"]
LATE = ["late 1", "late 2", "late 3"]
GAP_SECONDS = 5
TICKS = [f"tick {i}" for i in range(1, 6)]
TRIGGER_PORT = 9000


def logs_pod() -> dict[str, Any]:
    lines = (
        "".join(f'echo "{line}"; ' for line in EARLY)
        + f"sleep {GAP_SECONDS}; "
        + "".join(f'echo "{line}"; ' for line in LATE)
        + "exec sleep 3600"
    )
    restarts = (
        f'echo "run {RANDOM}"; '
        "if [ -e /scratch/ran ]; then exec sleep 3600; fi; "
        "touch /scratch/ran; exit 5"
    )
    ticker = (
        "echo 'waiting for go'; "
        f"nc -l -p {TRIGGER_PORT} > /dev/null; "
        + "".join(f'echo "{tick}"; sleep 0.3; ' for tick in TICKS)
        + "echo bye"
    )
    return podshapes.body(
        pod(
            "logs",
            {
                "restartPolicy": "OnFailure",
                "containers": [
                    container("lines", lines),
                    container(
                        "restarts",
                        restarts,
                        volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
                    ),
                    container("ticker", ticker),
                ],
                "volumes": [{"name": "scratch", "emptyDir": {}}],
            },
        )
    )


@pytest.fixture(scope="module")
def logs(real_node_sidecar: SidecarProcess, control_plane: LocalCluster) -> Iterator[Offloaded]:
    made = Offloaded(real_node_sidecar, logs_pod())
    try:
        asyncio.run(create_all([made]))
        yield made
    finally:
        asyncio.run(delete_all(control_plane, [made]))


async def all_lines(logs: Offloaded) -> str:
    """The whole log of ``lines`` once its late lines are written."""
    await logs.wait("lines to run", lambda s: state_of(s, "lines") == "running")
    text: str = await poll(
        "the late lines",
        lambda: logs.log_text("lines"),
        lambda text: text.endswith(LATE[-1] + "\n"),
    )
    return text


def stamped(text: str) -> list[tuple[datetime, str]]:
    """``<RFC 3339 time> <line>`` lines -> (time, line)."""
    result = []
    for line in text.splitlines():
        stamp, _, rest = line.partition(" ")
        result.append((datetime.fromisoformat(stamp), rest))
    return result


async def test_tail_and_byte_limit(logs: Offloaded) -> None:
    whole = await all_lines(logs)
    assert whole == "".join(f"{line}\n" for line in EARLY + LATE)
    assert await logs.log_text("lines", Tail=2) == "late 2\nlate 3\n"
    assert await logs.log_text("lines", Tail=100) == whole
    code, body = await logs.logs("lines", Bytes=10)
    assert (code, body) == (200, b"early 1\nea")


async def test_timestamps_and_since_time_and_since_seconds(logs: Offloaded) -> None:
    started = datetime.now(UTC)
    await all_lines(logs)
    lines = stamped(await logs.log_text("lines", Timestamps=True))
    assert [line for _, line in lines] == EARLY + LATE
    times = [moment for moment, _ in lines]
    # the kubelet's stamps, when each line was written: in order, recent, tz-aware, and
    # the sleep between the early and the late lines shows
    assert times == sorted(times)
    assert all(moment.tzinfo is not None for moment in times)
    assert started - timedelta(minutes=2) < times[0] and times[-1] <= datetime.now(UTC)
    last_early, first_late = times[len(EARLY) - 1], times[len(EARLY)]
    assert first_late - last_early >= timedelta(seconds=GAP_SECONDS - 0.5)

    # SinceTime: whole seconds (the API's); the first whole second after the early lines
    since = datetime.fromtimestamp(math.ceil(last_early.timestamp()), UTC)
    assert since <= first_late
    text = await logs.log_text("lines", SinceTime=since.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert text == "".join(f"{line}\n" for line in LATE)

    # SinceSeconds: counted back from when the kubelet reads. Cut 2-3 s before the
    # first late line (a read up to 2 s later still includes it), which is still at
    # least GAP_SECONDS - 3 s after the last early line.
    age = (datetime.now(UTC) - first_late).total_seconds()
    text = await logs.log_text("lines", SinceSeconds=math.floor(age) + 3, Timestamps=True)
    assert [line for _, line in stamped(text)] == LATE


async def test_previous_returns_the_output_of_the_instance_before_the_restart(
    logs: Offloaded,
) -> None:
    status = await logs.wait(
        "restarts to run again after its first exit",
        lambda s: (
            container_status(s, "restarts").get("restartCount", 0) >= 1
            and state_of(s, "restarts") == "running"
        ),
    )
    entry = container_status(status, "restarts")
    assert entry["restartCount"] == 1
    assert entry["lastState"]["terminated"]["exitCode"] == 5
    current = await logs.log_text("restarts")
    previous = await logs.log_text("restarts", Previous=True)
    for text in (current, previous):
        assert text.startswith("run ") and text.count("\n") == 1, text
    assert previous != current
    # Timestamps and Tail apply to the previous instance too.
    [(_, line)] = stamped(await logs.log_text("restarts", Previous=True, Timestamps=True, Tail=1))
    assert line + "\n" == previous
    # A container that never restarted has no previous instance: an error, not a log.
    code, body = await logs.logs("lines", Previous=True)
    assert code != 200, body
    assert b"previous terminated container" in body, body


async def test_follow_streams_new_lines_and_ends_when_the_container_exits(
    logs: Offloaded, real_node_sidecar: SidecarProcess, control_plane: LocalCluster
) -> None:
    await logs.wait("ticker to run", lambda s: state_of(s, "ticker") == "running")
    await poll(
        "ticker to wait for its go",
        lambda: logs.log_text("ticker"),
        lambda text: text == "waiting for go\n",
    )
    pod_ip = logs.remote_pod(control_plane)["status"]["podIP"]
    body = json.dumps(log_request(logs.pod, "ticker", Follow=True))
    received = b""
    async with (
        client_session() as session,
        session.get(real_node_sidecar.tcp_url + "/getLogs", data=body) as response,
    ):
        assert response.status == 200
        async with asyncio.timeout(scaled(30)):
            while b"waiting for go\n" not in received:
                received += await response.content.readany()
        assert b"tick" not in received  # nothing else until the test says go

        async def go() -> bool:
            try:
                _, writer = await asyncio.open_connection(pod_ip, TRIGGER_PORT)
            except OSError:
                return False  # nc is not listening yet
            writer.write(b"go\n")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            return True

        await poll("the ticker to take the go", go, bool, timeout=30)
        arrivals = []
        async with asyncio.timeout(scaled(30)):
            while b"bye\n" not in received:
                chunk = await response.content.readany()
                assert chunk, f"the stream ended before bye: {received!r}"
                received += chunk
                arrivals.append(time.monotonic())
        # the ticks came one by one, 0.3 s apart, while the stream was open
        assert arrivals[-1] - arrivals[0] >= 0.6, arrivals
        assert received.decode().splitlines() == ["waiting for go", *TICKS, "bye"]
        # the container exits after bye: the kubelet ends the stream, so does the sidecar
        async with asyncio.timeout(scaled(30)):
            rest = await response.content.read()
        assert rest == b""
    status = await logs.wait("ticker to end", lambda s: state_of(s, "ticker") == "terminated")
    ended = container_status(status, "ticker")
    assert ended["state"]["terminated"]["exitCode"] == 0 and ended.get("restartCount") == 0
    await poll(
        "the stream to be closed",
        lambda: asyncio.to_thread(metric_value, real_node_sidecar, "sidecar_logs_streams"),
        lambda value: value == 0,
    )


async def test_a_log_asked_before_the_container_started_is_empty_and_a_follow_waits_for_it(
    real_node_sidecar: SidecarProcess, control_plane: LocalCluster
) -> None:
    """Right after ``/create`` the container is still being created: the kubelet answers
    "waiting to start: ContainerCreating" (400). interLink's contract wants an empty 200
    for a container without output, and ``kubectl logs -f`` on a new pod to follow it
    once it starts."""
    late = Offloaded(
        real_node_sidecar,
        podshapes.body(pod("late", {"containers": [container("c", "echo first; echo second")]})),
    )
    await late.create()
    try:
        body = json.dumps(log_request(late.pod, "c", Follow=True))
        async with (
            client_session() as session,
            session.get(real_node_sidecar.tcp_url + "/getLogs", data=body) as response,
        ):
            assert response.status == 200
            async with asyncio.timeout(scaled(60)):
                assert await response.content.read() == b"first\nsecond\n"
        # the log of the ended container, without follow
        assert await late.log_text("c") == "first\nsecond\n"
    finally:
        await delete_all(control_plane, [late])
