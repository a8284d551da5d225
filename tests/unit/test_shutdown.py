"""The shutdown ladder fits its budget by construction (sidecar/shutdown.py), on a
fast-forwarded loop: a 25 s budget is checked in milliseconds, to the loop's second."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from types import SimpleNamespace
from typing import cast

import pytest

from sidecar import app
from sidecar.shutdown import LadderError, Step, check_shares, run_ladder
from sidecar.supervision import RootTasks

BUDGET = 25.0


def hanging(taken: list[tuple[str, float]], *, stubborn: bool = False) -> Step:
    """A step that never finishes; ``stubborn`` ones also swallow the first cancel."""

    async def run(seconds: float) -> None:
        taken.append((name, seconds))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if not stubborn:
                raise
            await asyncio.sleep(3600)  # ignores the ladder: must not hold it

    name = f"step-{len(taken)}"
    return Step(name, 0.0, run)


def real_shares() -> list[float]:
    return [app.BACKGROUND_SHARE, app.PLUGIN_API_SHARE, app.OPS_SHARE, app.CLIENTS_SHARE]


def with_shares(steps: list[Step], shares: list[float]) -> list[Step]:
    return [
        Step(f"step-{i}", share, step.run)
        for i, (step, share) in enumerate(zip(steps, shares, strict=True))
    ]


@pytest.mark.looptime
async def test_worst_case_every_step_hangs_and_the_ladder_ends_at_the_budget() -> None:
    loop = asyncio.get_running_loop()
    taken: list[tuple[str, float]] = []
    shares = real_shares()
    steps = with_shares([hanging(taken, stubborn=i == 1) for i in range(len(shares))], shares)
    started = loop.time()
    try:
        unfinished = await run_ladder(steps, budget=BUDGET)
        ended = loop.time()
    finally:
        for task in asyncio.all_tasks():
            if task.get_name().startswith("shutdown-"):
                task.cancel()  # the stubborn step's task, left running by design
        await asyncio.sleep(0)

    # Loop time: only what the code itself spends on the CPU adds to the sleeps.
    assert ended - started == pytest.approx(BUDGET, abs=0.1)
    assert unfinished == [step.name for step in steps]
    # Each step was given its guaranteed share: none could eat a later one's.
    assert [seconds for _, seconds in taken] == pytest.approx([s * BUDGET for s in shares], abs=0.1)


@pytest.mark.looptime
async def test_time_a_quick_step_leaves_flows_to_the_next_ones() -> None:
    taken: list[tuple[str, float]] = []

    async def quick(seconds: float) -> None:
        taken.append(("quick", seconds))
        await asyncio.sleep(0.5)

    steps = [Step("quick", 0.1, quick), *with_shares([hanging(taken)], [0.7])]

    await run_ladder(steps, budget=BUDGET)

    # The quick step used 0.5 s of its 2.5; the next one may use all but nothing reserved.
    assert taken[1][1] == pytest.approx(BUDGET - 0.5, abs=0.1)


@pytest.mark.looptime
async def test_a_failing_step_does_not_stop_the_ladder() -> None:
    ran: list[str] = []

    async def broken(seconds: float) -> None:
        raise RuntimeError("boom")

    async def last(seconds: float) -> None:
        ran.append("last")

    unfinished = await run_ladder(
        [Step("broken", 0.5, broken), Step("last", 0.5, last)], budget=BUDGET
    )

    assert unfinished == ["broken"]
    assert ran == ["last"]


def test_shares_that_overflow_the_budget_are_refused() -> None:
    async def noop(seconds: float) -> None:
        return None

    with pytest.raises(LadderError, match=r"1\.200"):
        check_shares([Step("a", 0.7, noop), Step("b", 0.5, noop)])


@pytest.mark.looptime
async def test_the_sidecar_ladder_ends_at_the_budget_when_nothing_stops() -> None:
    """The real steps of ``app.shutdown_steps``: every root task swallows its cancel and
    the API clients never close."""
    loop = asyncio.get_running_loop()
    released = asyncio.Event()
    tasks = RootTasks()
    for name in [*app.BACKGROUND_TASKS, "plugin-api-server", "ops-server"]:
        tasks.start(name, stubborn(released))
    clients = AsyncExitStack()
    clients.push_async_callback(stubborn, released)
    parts = cast(app.Parts, SimpleNamespace(clients=clients))
    steps = app.shutdown_steps(parts, tasks)
    started = loop.time()
    try:
        unfinished = await run_ladder(steps, budget=BUDGET)
        ended = loop.time()
    finally:
        released.set()
        await asyncio.sleep(0)

    assert ended - started == pytest.approx(BUDGET, abs=0.1)
    assert "API clients" in unfinished


async def stubborn(released: asyncio.Event) -> None:
    """Swallows every cancel until the test releases it."""
    while not released.is_set():
        try:
            await released.wait()
        except asyncio.CancelledError:
            continue


def test_the_sidecar_ladder_leaves_in_flight_calls_time_to_close() -> None:
    # aiohttp waits IN_FLIGHT_SHARE of the budget for in-flight calls, inside the plugin
    # API step, which then still has time to close the connections.
    assert app.IN_FLIGHT_SHARE < app.PLUGIN_API_SHARE
