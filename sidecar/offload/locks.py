"""One asyncio lock per key (pod uid), dropped when nobody holds or waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class ActivityCounter:
    """How many creates are in flight per remote namespace (so the namespace is not
    deleted under them)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    @asynccontextmanager
    async def active(self, key: str) -> AsyncIterator[None]:
        self._counts[key] = self._counts.get(key, 0) + 1
        try:
            yield
        finally:
            self._counts[key] -= 1
            if not self._counts[key]:
                del self._counts[key]

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)
