"""The shutdown ladder: steps run in order, all inside one deadline.

Kubernetes sends SIGTERM, waits ``terminationGracePeriodSeconds`` (30 s by default and in
the chart), then SIGKILLs. Whatever the ladder has not done by then is lost (an in-flight
``/create`` answer, the journal's last write), so the whole ladder must fit
``app.shutdown_timeout_seconds`` (25 s) *by construction*, not by hoping each step is fast.

The contract: each step is guaranteed its ``share`` of the budget; time a step leaves
unused flows to the next ones (a step may use everything left except what the later
steps are guaranteed). A step still running when its time is up is cancelled and *not*
awaited (a step that swallows cancellation cannot hold the process), so the ladder
returns within the budget even if every step hangs. The shares add up to at most 1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Step:
    """One rung: ``run(seconds)`` is given the seconds it may take."""

    name: str
    share: float
    """Fraction of the whole budget this step is guaranteed (0-1)."""
    run: Callable[[float], Awaitable[None]]


class LadderError(ValueError):
    """The steps' shares do not fit one budget."""


def check_shares(steps: Sequence[Step]) -> None:
    """Raise LadderError unless every share is in [0, 1] and they add up to at most 1."""
    for step in steps:
        if not 0 <= step.share <= 1:
            raise LadderError(f"step {step.name!r}: share {step.share} is not within 0-1")
    total = sum(step.share for step in steps)
    if total > 1 + 1e-9:
        raise LadderError(f"the steps' shares add up to {total:.3f}, more than the whole budget")


async def run_ladder(steps: Sequence[Step], *, budget: float) -> list[str]:
    """Run ``steps`` in order within ``budget`` seconds; returns the names of the steps
    that did not finish in time (cancelled, logged) or failed (logged)."""
    check_shares(steps)
    clock = asyncio.get_running_loop().time  # monotonic; the one asyncio.wait times by
    deadline = clock() + budget
    unfinished: list[str] = []
    for index, step in enumerate(steps):
        guaranteed_later = sum(later.share for later in steps[index + 1 :]) * budget
        seconds = max(0.0, deadline - clock() - guaranteed_later)
        task = asyncio.create_task(_call(step, seconds), name=f"shutdown-{step.name}")
        done, _ = await asyncio.wait([task], timeout=seconds)
        if not done:
            task.cancel()  # not awaited: a step that ignores cancellation cannot hold us
            logger.error("shutdown step %r did not finish within %.1f s", step.name, seconds)
            unfinished.append(step.name)
        elif task.cancelled() or task.exception() is not None:
            error = None if task.cancelled() else task.exception()
            logger.error("shutdown step %r failed", step.name, exc_info=error)
            unfinished.append(step.name)
    return unfinished


async def _call(step: Step, seconds: float) -> None:
    await step.run(seconds)
