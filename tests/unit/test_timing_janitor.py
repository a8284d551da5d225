"""The janitor's schedule on a fast-forwarded loop (looptime): a journalled delete that
keeps failing is tried at once and then after 1, 2, 4, ... s (+-20 %) up to
``app.janitor_max_backoff_seconds``; a given-up (dead) delete is tried again only after
``dead_recheck``; the journal is checked every ``JOURNAL_CHECK_SECONDS``. The janitor
schedules by ``time.monotonic()``: it is given the loop's (fake) clock here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from sidecar.offload import janitor as janitor_module
from sidecar.offload.janitor import JOURNAL_CHECK_SECONDS, RetryPolicy, _check_journal
from sidecar.offload.journal import DeleteJournal
from tests.unit.loopclock import LoopClock, gaps, loop_now
from tests.unit.test_janitor import FakeOffloader, running

pytestmark = pytest.mark.looptime

EPSILON = 0.05  # fake seconds


@pytest.fixture(autouse=True)
def loop_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(janitor_module, "time", LoopClock())


class TimedOffloader(FakeOffloader):
    """Every attempt fails (the remote answered); the loop time of each is kept."""

    def __init__(self, journal: DeleteJournal) -> None:
        super().__init__(journal)
        self.at: list[float] = []

    async def retry_delete(self, pod_uid: str, namespace: str) -> bool:
        self.at.append(loop_now())
        return await super().retry_delete(pod_uid, namespace)


async def until(condition: Callable[[], bool], *, within: float) -> None:
    # Polling a condition with a deadline, in fake seconds: about 200 polls whatever the
    # window (the times asserted are the offloader's own stamps, not the poll's). A poll
    # every 0.5 s over a 3-hour window was 21,600 loop turns, each with real cost: on a
    # busy CI machine the test ran past pytest's 120 s.
    step = max(0.5, within / 200)
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(step)


async def journal_with(tmp_path: Path, *uids: str) -> DeleteJournal:
    journal = DeleteJournal(tmp_path)
    journal.load()
    for uid in uids:
        await journal.add(uid, namespace="ns", name=uid, tombstone=True)
    return journal


async def test_a_failing_delete_is_retried_doubling_up_to_the_cap(tmp_path: Path) -> None:
    journal = await journal_with(tmp_path, "stuck")
    offloader = TimedOffloader(journal)
    policy = RetryPolicy(max_backoff=20, max_attempts=100)
    started = loop_now()
    async with running(offloader, journal, policy):
        await until(lambda: len(offloader.at) >= 9, within=600)
    assert offloader.at[0] - started < EPSILON, "the first attempt is at once"
    waits = gaps(offloader.at)[:8]
    for wait, base in zip(waits, [1, 2, 4, 8, 16, 20, 20, 20], strict=True):
        assert 0.8 * base - EPSILON <= wait <= 1.2 * base + EPSILON, (waits, base)
    assert len({round(w / b, 3) for w, b in zip(waits, [1, 2, 4, 8], strict=False)}) > 1


async def test_a_dead_delete_is_tried_again_only_after_its_recheck_interval(
    tmp_path: Path,
) -> None:
    journal = await journal_with(tmp_path, "stuck")
    offloader = TimedOffloader(journal)
    policy = RetryPolicy(max_backoff=1, max_attempts=2, dead_recheck=3600)
    async with running(offloader, journal, policy):
        await until(lambda: journal.dead_count() == 1, within=60)
        await until(lambda: len(offloader.at) >= 4, within=3 * 3600)
    retried, given_up, rechecked, again = offloader.at[:4]
    assert given_up - retried <= 1.2 + EPSILON
    assert 3600 - EPSILON <= rechecked - given_up <= 3600 + EPSILON
    assert 3600 - EPSILON <= again - rechecked <= 3600 + EPSILON


class CheckedJournal:
    def __init__(self) -> None:
        self.checks: list[float] = []

    async def check(self) -> None:
        self.checks.append(loop_now())
        if len(self.checks) == 2:
            raise OSError("disk full")  # logged; the checks go on


async def test_the_journal_is_checked_every_interval_even_after_a_failure() -> None:
    journal = CheckedJournal()
    task = asyncio.create_task(
        _check_journal(cast(DeleteJournal, journal), interval=JOURNAL_CHECK_SECONDS)
    )
    started = loop_now()
    try:
        await until(lambda: len(journal.checks) >= 4, within=10 * JOURNAL_CHECK_SECONDS)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert journal.checks[0] - started == pytest.approx(JOURNAL_CHECK_SECONDS, abs=EPSILON)
    assert gaps(journal.checks) == pytest.approx([JOURNAL_CHECK_SECONDS] * 3, abs=EPSILON)
