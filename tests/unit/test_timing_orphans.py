"""The orphan-pod grace on a fast-forwarded loop (looptime): a remote pod whose local
pod interLink stopped asking about is left alone for the whole window
(``offloading.orphan_after_seconds``), reported at the first sweep after it, and reaped
one sweep interval later; a pod interLink keeps asking about is never touched, however
long it runs. The sweep's clocks (the asked log's and the wall clock) are the loop's, and
the journal writes inline (``InlineJournal``: the reap journals the pod first, and a write
in a worker thread lets looptime move the clock while it lasts)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from metrics import make_metrics
from sidecar.offload.journal import DeleteJournal
from sidecar.offload.orphan_pods import OrphanPods, sweep_interval
from sidecar.status.asked import AskedLog
from sidecar.status.cache import StatusCache
from tests.unit.background import running
from tests.unit.loopclock import InlineJournal, loop_now
from tests.unit.test_orphan_pods import CREATED, Offloader, asked_about, remote_pod

pytestmark = pytest.mark.looptime

WINDOW = 600.0
EPSILON = 0.05  # fake seconds


class TimedOffloader(Offloader):
    def __init__(self, journal: DeleteJournal) -> None:
        super().__init__(journal)
        self.cleaned_at: list[float] = []

    async def attempt_cleanup(self, uid: str, namespace: str) -> bool:
        self.cleaned_at.append(loop_now())
        return await super().attempt_cleanup(uid, namespace)


async def poll_forever(asked: AskedLog, uid: str) -> None:
    """interLink's virtual kubelet asking about ``uid`` every 5 s."""
    while True:
        asked.saw_status([asked_about(uid)])
        await asyncio.sleep(5)


async def test_an_orphan_is_reaped_only_after_its_window_and_one_more_interval(
    tmp_path: Path,
) -> None:
    cache = StatusCache()
    cache.replace_all([remote_pod("a"), remote_pod("b")])  # both created at loop time 0
    cache.confirm()
    journal = InlineJournal(tmp_path)
    journal.load()
    offloader = TimedOffloader(journal)
    asked = AskedLog(gap=30, clock=loop_now)
    sweep = OrphanPods(
        cache=cache,
        asked=asked,
        offloader=offloader,  # type: ignore[arg-type]
        metrics=make_metrics(CollectorRegistry(), version="test"),
        window=WINDOW,
        policy="delete",
        wall=lambda: CREATED + loop_now(),
    )
    interval = sweep_interval(WINDOW)
    reported: list[tuple[float, set[str]]] = []

    async def watch_reports() -> None:
        while True:
            uids: set[Any] = {o["pod_uid"] for o in sweep.report()["orphans"]}
            if uids and not reported:
                reported.append((loop_now(), uids))
            await asyncio.sleep(1)

    async with (
        running(poll_forever(asked, "b")),
        running(watch_reports()),
        running(sweep.run_forever()),
    ):
        async with asyncio.timeout(10 * WINDOW):
            while not offloader.cleaned:
                await asyncio.sleep(1)  # polling a condition with a deadline
        await asyncio.sleep(5 * WINDOW)  # b, still asked about, is never reaped
    [(reported_at, uids)] = reported
    assert uids == {"a"}
    # Sweeps run at 0, interval, 2 * interval, ...: the first at or after the window
    # reports a, the next one reaps it.
    assert WINDOW <= reported_at < WINDOW + interval + 1
    # (The stand-in cache never sees a go, so it is reaped again at each later sweep.)
    assert set(offloader.cleaned) == {("a", "offloading-default")}
    assert offloader.cleaned_at[0] == pytest.approx(WINDOW + interval, abs=EPSILON)
