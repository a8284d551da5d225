"""Deadlines for the end-to-end tier, and the one way its tests wait: poll a condition.

Every wait is a poll with a deadline (never a fixed sleep). Deadlines are generous
(the chain runs five control-plane-sized processes per cluster on shared cores) and
multiplied by ``TEST_TIMEOUT_SCALE`` (default 1; ``E2E_DEADLINE_SCALE`` is its older
alias) for slower machines: tests/deadlines.py, shared with the other tiers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tests.deadlines import SCALE_ENV, scale

__all__ = ["SCALE_ENV", "DeadlineExceeded", "scale", "seconds", "wait_for"]
T = TypeVar("T")


class DeadlineExceeded(AssertionError):
    """A condition was not met in time; the message says what was last observed."""


def seconds(base: float) -> float:
    """``base`` seconds scaled by ``TEST_TIMEOUT_SCALE`` (alias ``E2E_DEADLINE_SCALE``)."""
    return base * scale()


def wait_for(
    what: str,
    observe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    interval: float = 0.5,
    context: Callable[[], str] = lambda: "",
) -> T:
    """Call ``observe`` until ``done`` holds for its value; return that value.

    ``timeout`` is scaled here. On the deadline, raise DeadlineExceeded naming ``what``,
    the last value (or exception) observed, and ``context()`` (e.g. the chain's logs).
    """
    deadline = time.monotonic() + seconds(timeout)
    last: object = "<nothing observed>"
    while True:
        try:
            value = observe()
        except Exception as exc:  # reported if the deadline passes
            last = f"{type(exc).__name__}: {exc}"
        else:
            if done(value):
                return value
            last = value
        if time.monotonic() > deadline:
            extra = context()
            raise DeadlineExceeded(
                f"timed out after {seconds(timeout):.0f} s waiting for {what}; last observed: "
                f"{last!r}" + (f"\n{extra}" if extra else "")
            )
        time.sleep(interval)  # polling a condition with a deadline
