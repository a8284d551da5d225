"""The running loop's clock, for code under test that reads ``time``: with looptime
(``@pytest.mark.looptime``) the loop's time is fake and fast-forwarded, and a module
that schedules by ``time.monotonic()``/``time.time()`` must see the same clock."""

from __future__ import annotations

import asyncio
import itertools

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
