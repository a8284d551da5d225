"""A long-running coroutine run for the length of a test, and a deadline-bound wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from tests.deadlines import scaled


@contextlib.asynccontextmanager
async def running(forever: Coroutine[Any, Any, Any]) -> AsyncIterator[None]:
    """Run ``forever`` (a loop that ends only when cancelled) inside the block."""
    task = asyncio.create_task(forever)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Wait for ``condition()``; ``timeout`` is scaled by ``TEST_TIMEOUT_SCALE``."""
    async with asyncio.timeout(scaled(timeout)):
        while not condition():
            await asyncio.sleep(0.01)  # polling a condition with a deadline
