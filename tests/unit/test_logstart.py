"""Opening a log whose container has not started (sidecar/api/logstart.py): an empty
log, or with Follow the stream once it starts; other refusals stay errors."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.api import logstart
from sidecar.core.pods import LogOptions
from sidecar.remote.errors import RemoteError

WAITING = 'container "c" in pod "p" is waiting to start: ContainerCreating'


class Kubelet:
    """Answers log requests from a script: an exception to raise or a stream."""

    def __init__(self, *answers: Any, phases: list[str] | None = None) -> None:
        self.answers = list(answers)
        self.phases = phases or []
        self.opened = 0

    async def open_log(self) -> Any:
        self.opened += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def pod(self) -> dict[str, Any] | None:
        phase = self.phases.pop(0) if self.phases else "Pending"
        return None if phase == "gone" else {"status": {"phase": phase}}


@pytest.fixture(autouse=True)
def _no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logstart, "RETRY_SECONDS", 0)


async def test_without_follow_a_container_waiting_to_start_has_an_empty_log() -> None:
    kubelet = Kubelet(RemoteError(400, "BadRequest", WAITING))
    assert await logstart.open_when_started(kubelet.open_log, kubelet.pod, LogOptions()) is None
    assert kubelet.opened == 1


async def test_a_follow_waits_for_the_container_to_start_and_then_streams_it() -> None:
    waiting = RemoteError(400, "BadRequest", WAITING)
    kubelet = Kubelet(waiting, waiting, "stream", phases=["Pending", "Running"])
    opened = await logstart.open_when_started(
        kubelet.open_log, kubelet.pod, LogOptions(follow=True)
    )
    assert (opened, kubelet.opened) == ("stream", 3)


@pytest.mark.parametrize("end", ["Failed", "Succeeded", "gone"])
async def test_a_follow_of_a_container_that_never_starts_ends_empty_when_the_pod_ends(
    end: str,
) -> None:
    waiting = RemoteError(400, "BadRequest", WAITING)
    kubelet = Kubelet(waiting, waiting, waiting, phases=["Pending", end])
    opened = await logstart.open_when_started(
        kubelet.open_log, kubelet.pod, LogOptions(follow=True)
    )
    assert (opened, kubelet.opened) == (None, 3)  # asked once more after the end


async def test_a_container_that_started_and_ended_before_the_pod_was_read_keeps_its_log() -> None:
    waiting = RemoteError(400, "BadRequest", WAITING)
    kubelet = Kubelet(waiting, "stream", phases=["Succeeded"])
    opened = await logstart.open_when_started(
        kubelet.open_log, kubelet.pod, LogOptions(follow=True)
    )
    assert opened == "stream"


async def test_a_pod_without_a_node_has_an_empty_log_even_when_followed() -> None:
    kubelet = Kubelet(RemoteError(204, "", ""))
    opened = await logstart.open_when_started(
        kubelet.open_log, kubelet.pod, LogOptions(follow=True)
    )
    assert (opened, kubelet.opened) == (None, 1)


@pytest.mark.parametrize(
    "refusal",
    [
        RemoteError(400, "BadRequest", 'previous terminated container "c" not found'),
        RemoteError(404, "NotFound", "pods p not found"),
        RemoteError(500, "InternalError", "waiting to start"),
    ],
)
async def test_other_refusals_stay_errors(refusal: RemoteError) -> None:
    kubelet = Kubelet(refusal)
    with pytest.raises(RemoteError):
        await logstart.open_when_started(kubelet.open_log, kubelet.pod, LogOptions(follow=True))
