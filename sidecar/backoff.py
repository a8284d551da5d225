"""Capped exponential backoff with jitter, for the sidecar's retry loops (watcher, janitor).

Doubling from ``initial`` up to ``cap``, then +-20 % jitter so many retries started by the
same outage do not hit the remote API server in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff(
    attempt: int,
    *,
    initial: float = 1.0,
    cap: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    base: float = min(cap, initial * 2.0 ** max(0, attempt - 1))
    return base * (0.8 + 0.4 * rng())
