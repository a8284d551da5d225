"""Give memory freed after a burst back to the operating system.

A wide burst of ``/create`` calls decodes hundreds of pod bodies with their ConfigMaps
and Secrets at once. Python frees those objects when the calls end, but glibc's
allocator keeps the freed pages in its arenas for reuse: they are returned to the
system only when they sit at the top of the heap, so after a burst the resident size
stayed at its high-water mark (measured: 96 MB at start, 190 MB with no pods left after
two 500-wide bursts, with the reads already bounded; see the README). ``malloc_trim(0)``
hands every whole free page of every arena back (``madvise(MADV_DONTNEED)``), without
moving live objects.

``trim_forever`` is a root task: every ``interval`` seconds it calls ``malloc_trim``
unless nothing changed since the previous trim, and never returns. Where the C
library is not glibc (musl, macOS) it does nothing and says so once at DEBUG.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

PAGE_BYTES = 4096
# A trim takes about 5-12 ms on a 350 MB heap (measured here) and blocks the loop that
# long: every 30 s it is noise, and memory freed by a burst is back within half a minute.
TRIM_INTERVAL_SECONDS = 30.0


def resident_bytes() -> int:
    """This process's resident set size from ``/proc/self/statm`` (0 where there is none)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def glibc_trim() -> Callable[[], None] | None:
    """``malloc_trim(0)`` of the C library, or None where it has none."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def trim_all() -> None:
        trim(0)  # 0: keep no padding at the top of the heap

    return trim_all


async def trim_forever(interval: float) -> None:
    """Trim the heap every ``interval`` seconds, unless the resident size is what it was
    right after the previous trim (an idle process: nothing new was freed). Runs until
    cancelled."""
    # In a thread: find_library runs ``ldconfig -p`` (a subprocess) to find the C library.
    trim = await asyncio.to_thread(glibc_trim)
    if trim is None:
        logger.debug("no malloc_trim in this C library: freed memory stays with the allocator")
        await asyncio.Event().wait()
        return
    after = -1
    while True:
        await asyncio.sleep(interval)
        before = resident_bytes()
        if before == after:
            continue
        started = time.perf_counter()
        trim()
        after = resident_bytes()
        if before - after > 1e6:
            logger.debug(
                "malloc_trim: resident %.1f MB -> %.1f MB in %.1f ms",
                before / 1e6,
                after / 1e6,
                (time.perf_counter() - started) * 1e3,
            )
