"""The heap trimmer gives memory freed in the middle of the heap back to the system."""

from __future__ import annotations

import asyncio
import platform

import pytest

from sidecar import memory

glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc_trim is a glibc function"
)

MB = 1_000_000


def fragmented_heap() -> tuple[list[bytes], list[bytes]]:
    """100 MB in 64 KiB blocks (below glibc's mmap threshold: on the heap), each followed
    by a small live block that pins the top of the heap once the big ones are freed."""
    big, pins = [], []
    for _ in range(1600):
        big.append(bytes(64 * 1024))
        pins.append(bytes(1000))  # over 512 bytes: from malloc, not pymalloc's arenas
    return big, pins


@glibc
def test_trim_returns_freed_pages_that_glibc_would_keep() -> None:
    trim = memory.glibc_trim()
    assert trim is not None
    big, pins = fragmented_heap()
    before = memory.resident_bytes()
    big.clear()  # freed, but below live blocks: glibc keeps the pages
    kept = memory.resident_bytes()
    trim()
    after = memory.resident_bytes()
    assert before - kept < 20 * MB, "glibc gave the pages back by itself: nothing to show"
    assert kept - after > 80 * MB, (before, kept, after)
    assert pins  # alive until here


@glibc
async def test_the_root_task_trims_after_a_burst_and_keeps_running() -> None:
    big, pins = fragmented_heap()
    big.clear()
    kept = memory.resident_bytes()
    task = asyncio.create_task(memory.trim_forever(0.01))
    try:
        async with asyncio.timeout(30):
            while kept - memory.resident_bytes() < 80 * MB:
                await asyncio.sleep(0.01)
        assert not task.done()
    finally:
        task.cancel()
    assert pins
