"""The janitor's retry cap: a delete that never finishes becomes a dead letter once, kept
in the journal; an unreachable remote does not use the cap up; a dead entry is tried
again after its recheck interval and a new /delete revives it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import cast

import pytest

from sidecar.offload.janitor import RetryPolicy, _finish_deletes
from sidecar.offload.journal import DeleteJournal, PendingDelete
from sidecar.offload.service import Offloader
from tests.unit import background
from tests.unit.background import until


class FakeOffloader:
    """What the janitor's delete loop uses of Offloader; every attempt fails."""

    def __init__(
        self, journal: DeleteJournal, *, unreachable: frozenset[str] = frozenset()
    ) -> None:
        self.journal = journal
        self.janitor_wakeup = asyncio.Event()
        self.unreachable = unreachable
        """uids whose attempts find the remote API server unreachable."""
        self.attempts: list[str] = []
        self.retries = 0
        self.finish = False

    def creating_since(self, uid: str) -> float | None:
        return None

    async def retry_delete(self, pod_uid: str, namespace: str) -> bool:
        self.attempts.append(pod_uid)
        if self.finish:
            await self.journal.remove(pod_uid)
            return True
        answered = pod_uid not in self.unreachable
        self.journal.note_failure(pod_uid, "pod still terminating", answered=answered)
        return False

    def note_retry(self) -> None:
        self.retries += 1

    def can_finish_now(self, pod_uid: str) -> bool:
        return False

    def awaiting_watch(self) -> bool:
        return False


def running(
    offloader: FakeOffloader, journal: DeleteJournal, policy: RetryPolicy
) -> contextlib.AbstractAsyncContextManager[None]:
    return background.running(_finish_deletes(cast(Offloader, offloader), journal, policy=policy))


def test_the_policy_gives_up_on_attempts_or_age() -> None:
    policy = RetryPolicy(max_backoff=1, max_attempts=3, give_up_after=100)
    fresh = PendingDelete("u", "ns", "p", since=1000.0, attempts=2)
    assert policy.exhausted(fresh, now=1050.0, tries=2) is None
    tried = PendingDelete("u", "ns", "p", since=1000.0, attempts=3)
    assert "app.janitor_max_attempts" in str(policy.exhausted(tried, now=1000.0, tries=3))
    assert "app.delete_give_up_seconds" in str(policy.exhausted(fresh, now=1100.0, tries=3))
    # Old, but barely tried by this process (it was stopped a long time): not yet.
    patient = RetryPolicy(max_backoff=1, max_attempts=100, give_up_after=100)
    assert patient.exhausted(fresh, now=5000.0, tries=1) is None
    assert patient.exhausted(fresh, now=5000.0, tries=10) is not None


async def test_a_delete_that_never_finishes_is_given_up_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = DeleteJournal(tmp_path)
    journal.load()
    await journal.add("stuck", namespace="ns", name="p", tombstone=True)
    # A second delete, its remote unreachable, keeps the loop turning meanwhile.
    await journal.add("outage", namespace="ns", name="q", tombstone=True)
    offloader = FakeOffloader(journal, unreachable=frozenset({"outage"}))
    policy = RetryPolicy(max_backoff=0.01, max_attempts=3, dead_recheck=3600)
    with caplog.at_level(logging.INFO):
        async with running(offloader, journal, policy):
            await until(lambda: journal.dead_count() == 1)
            await until(lambda: offloader.attempts.count("outage") >= 20)
    assert offloader.attempts.count("stuck") == 3, "no attempt after giving up"
    outage = journal.get("outage")
    assert outage is not None and not outage.dead, "an outage does not use the cap up"
    given_up = [r for r in caplog.records if "giving up" in r.getMessage()]
    assert len(given_up) == 1 and given_up[0].levelname == "ERROR"
    reloaded = DeleteJournal(tmp_path)
    reloaded.load()
    [dead] = reloaded.dead()
    assert dead.pod_uid == "stuck" and dead.attempts == 3


async def test_a_dead_entry_is_rechecked_and_a_new_delete_revives_it(tmp_path: Path) -> None:
    journal = DeleteJournal(tmp_path)
    journal.load()
    await journal.add("stuck", namespace="ns", name="p", tombstone=True)
    offloader = FakeOffloader(journal)
    policy = RetryPolicy(max_backoff=0.01, max_attempts=1, dead_recheck=0.3)
    async with running(offloader, journal, policy):
        await until(lambda: journal.dead_count() == 1)
        await until(lambda: len(offloader.attempts) >= 2)  # the recheck, 0.3 s later
        offloader.finish = True
        await until(lambda: "stuck" not in journal)

    slow = RetryPolicy(max_backoff=0.01, max_attempts=1, dead_recheck=3600)
    offloader.finish = False
    await journal.add("again", namespace="ns", name="p", tombstone=True)
    async with running(offloader, journal, slow):
        await until(lambda: journal.dead_count() == 1)
        offloader.finish = True
        await journal.add("again", namespace="ns", name="p", tombstone=True)  # /delete again
        offloader.janitor_wakeup.set()
        await until(lambda: "again" not in journal)  # at once, not in an hour


class BlockingOffloader(FakeOffloader):
    """Attempts of uid ``slow`` hang until released; every other attempt finishes."""

    def __init__(self, journal: DeleteJournal) -> None:
        super().__init__(journal)
        self.release = asyncio.Event()

    async def retry_delete(self, pod_uid: str, namespace: str) -> bool:
        self.attempts.append(pod_uid)
        if pod_uid == "slow":
            await self.release.wait()
        await self.journal.remove(pod_uid)
        return True


async def test_a_hanging_attempt_does_not_hold_back_the_other_deletes(tmp_path: Path) -> None:
    journal = DeleteJournal(tmp_path)
    journal.load()
    await journal.add("slow", namespace="ns", name="p", tombstone=True)
    for index in range(5):
        await journal.add(f"quick-{index}", namespace="ns", name="q", tombstone=True)
    offloader = BlockingOffloader(journal)
    async with running(offloader, journal, RetryPolicy(max_backoff=0.01)):
        await until(lambda: len(journal) == 1)
        assert journal.get("slow") is not None  # still hanging: the others went past it
        offloader.release.set()
        await until(lambda: len(journal) == 0)
