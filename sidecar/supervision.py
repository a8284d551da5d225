"""Root tasks: named, watched, and any one of them ending is the end of the process.

The contract (after kopf's ``aiotasks.guard``): a root task runs until cancelled and never
returns normally. If one returns or raises, ``wait_first_exit`` reports it so the owner
can log why and exit non-zero; Kubernetes then restarts the process, which is safer than
a plugin that keeps answering while, say, its watch is dead (aiohttp#6518 is that bug
in ``run_app`` background tasks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskExit:
    """Why ``wait_first_exit`` returned: a stop request, or a root task that ended."""

    task: str | None
    """Name of the root task that ended; None when stop was requested."""
    error: BaseException | None = None


class RootTasks:
    """Owns the root tasks: starts them by name, reports the first exit, stops them in order."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks[name] = asyncio.create_task(coro, name=name)

    def alive(self) -> dict[str, bool]:
        return {name: not task.done() for name, task in self._tasks.items()}

    async def wait_first_exit(self, stop: asyncio.Event) -> TaskExit:
        """Wait until ``stop`` is set or a root task ends, whichever comes first."""
        stopper = asyncio.create_task(stop.wait(), name="stop-waiter")
        try:
            done, _ = await asyncio.wait(
                [stopper, *self._tasks.values()], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
        for name, task in self._tasks.items():
            if task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    logger.error("root task %r crashed", name, exc_info=error)
                else:
                    logger.error("root task %r ended unexpectedly", name)
                return TaskExit(task=name, error=error)
        return TaskExit(task=None)

    async def stop(self, names: list[str], *, timeout: float) -> None:
        """Cancel the named tasks together and wait for them, all within ``timeout``
        seconds; one that has not ended by then is logged and left (the process exits)."""
        running = {
            name: task
            for name in names
            if (task := self._tasks.get(name)) is not None and not task.done()
        }
        for task in running.values():
            task.cancel()
        if not running:
            return
        await asyncio.wait(running.values(), timeout=timeout)
        for name, task in running.items():
            if not task.done():
                logger.error("root task %r did not stop within %.1f s", name, timeout)
            elif not task.cancelled() and task.exception() is not None:
                logger.warning(
                    "root task %r failed while stopping", name, exc_info=task.exception()
                )

    def names(self) -> list[str]:
        return list(self._tasks)


async def serve_until_cancelled(cleanup: Callable[[], Awaitable[None]]) -> None:
    """A root task for a started aiohttp runner: waits until cancelled, then cleans up.

    ``cleanup`` (``runner.cleanup()``) closes listeners, lets in-flight requests finish
    within the runner's ``shutdown_timeout`` and closes connections.
    """
    try:
        await asyncio.Event().wait()
    finally:
        await cleanup()
