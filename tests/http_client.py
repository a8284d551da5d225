"""An aiohttp client session for tests that leaves no socket behind.

``ClientSession.close`` closes its connections' transports, but asyncio releases a
closed transport's socket only in a callback of the next loop iteration. A test whose
last request ends right before its event loop is closed (pytest-asyncio closes one per
test) leaves that socket to the garbage collector, and its ResourceWarning (an error
here) then fails whichever later test happens to trigger the collection. One yield to
the loop after closing releases the sockets where they were opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp


@asynccontextmanager
async def client_session(**options: Any) -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession(**options)
    try:
        yield session
    finally:
        await session.close()
        await asyncio.sleep(0)  # one loop iteration: the closed transports free their sockets
