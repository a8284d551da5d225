"""The running loop's clock, for code under test that reads ``time``: with looptime
(``@pytest.mark.looptime``) the loop's time is fake and fast-forwarded, and a module
that schedules by ``time.monotonic()``/``time.time()`` must see the same clock. Also
``InlineJournal``: the delete journal without its worker thread, for tests that measure
the fake clock across a journal write."""

from __future__ import annotations

import asyncio
import itertools

from sidecar.offload.journal import DeleteJournal

EPOCH = 1_800_000_000.0
"""Wall-clock time at loop time 0 (any fixed instant)."""


def loop_now() -> float:
    return asyncio.get_running_loop().time()


class LoopClock:
    """Stands in for a module's ``time`` module (``monkeypatch.setattr(mod, "time", ...)``)."""

    @staticmethod
    def monotonic() -> float:
        return loop_now()

    @staticmethod
    def perf_counter() -> float:
        return loop_now()

    @staticmethod
    def time() -> float:
        return EPOCH + loop_now()


def gaps(stamps: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(stamps)]


class InlineJournal(DeleteJournal):
    """The delete journal writing its file on the loop's thread, not in a worker thread
    (``asyncio.to_thread``). While a worker thread's future is pending, looptime cannot
    know how long it will take: it waits in real time for at most 0.8 of the gap to the
    next timer and, if the thread has not finished by then, moves the clock to that timer
    (``looptime/_internal/loops.py``, the ``__sync_futures`` branch of
    ``__replaced_select``). A slow write (fsync on a busy disk, a worker thread the
    scheduler runs late) then adds up to a timer's gap of fake time to whatever interval
    is measured across it. Written inline, a write takes no fake time at all. The file is
    the same; a write that fails raises (no ``problem`` state: not what these tests are
    about)."""

    async def _persist(self) -> bool:
        self._expire()
        self._write(self._text())
        return True
