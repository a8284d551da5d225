"""The janitor's schedule on a fast-forwarded loop (looptime): a journalled delete that
keeps failing is tried at once and then after 1, 2, 4, ... s (+-20 %) up to
``app.janitor_max_backoff_seconds``; a given-up (dead) delete is tried again only after
``dead_recheck``; the journal is checked every ``JOURNAL_CHECK_SECONDS``. The janitor
schedules by ``time.monotonic()``: it is given the loop's (fake) clock here, and the
journal writes inline (``InlineJournal``: a write in a worker thread lets looptime move
the clock while it lasts)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from sidecar.offload import janitor as janitor_module
from sidecar.offload.janitor import JOURNAL_CHECK_SECONDS, RetryPolicy, _check_journal
from sidecar.offload.journal import DeleteJournal
from tests.unit.loopclock import InlineJournal, LoopClock, gaps, loop_now
from tests.unit.test_janitor import FakeOffloader, running

pytestmark = pytest.mark.looptime

EPSILON = 0.05  # fake seconds
SPIN_PASSES = 1000
"""Passes of the janitor's loop at one loop time that fail the test: it spins."""


@pytest.fixture(autouse=True)
def loop_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(janitor_module, "time", LoopClock())


class TimedOffloader(FakeOffloader):
    """Every attempt fails (the remote answered); the loop time of each is kept. A janitor
    that spins (passes over a delete not yet due without the loop clock moving: looptime
    moves it only when the loop is idle, so the spin never ends) fails the test at once
    instead of hanging it until pytest's timeout."""

    def __init__(self, journal: DeleteJournal) -> None:
        super().__init__(journal)
        self.at: list[float] = []
        self.passes: list[float] = []
        """Loop time of the janitor's last passes over a delete not due, all the same."""

    async def retry_delete(self, pod_uid: str, namespace: str) -> bool:
        self.at.append(loop_now())
        return await super().retry_delete(pod_uid, namespace)

    def can_finish_now(self, pod_uid: str) -> bool:
        # Asked once per pass of the janitor's loop over each delete that is not due.
        now = loop_now()
        if self.passes and self.passes[0] != now:
            self.passes.clear()
        self.passes.append(now)
        if len(self.passes) >= SPIN_PASSES:
            raise AssertionError(f"the janitor spins: {len(self.passes)} passes at {now}")
        return False


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
    journal = InlineJournal(tmp_path)
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


async def test_a_delete_due_a_fraction_of_a_nanosecond_after_a_clock_tick_is_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncio ends a timed wait up to its clock's resolution (1 ns) early, and ``now +
    # delay`` is rounded: the dead-letter test above hung (1 run in 8) on a recheck due at
    # 7200.8547610000005 (3600.854761 + 3600), its wait ended at loop time 7200.854761.
    # The same, made certain: every retry due 0.4 ns after a tick of the loop's clock.
    monkeypatch.setattr(janitor_module, "backoff", lambda attempt, cap: 1 + 4e-10)
    journal = await journal_with(tmp_path, "stuck")
    offloader = TimedOffloader(journal)
    async with running(offloader, journal, RetryPolicy(max_backoff=1)):
        await until(lambda: len(offloader.at) >= 3, within=60)
    assert gaps(offloader.at)[:2] == pytest.approx([1, 1], abs=EPSILON)


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
