"""One knob for every wait in the tests: ``TEST_TIMEOUT_SCALE`` (default 1).

Base deadlines in the tests are generous (a poll that succeeds returns at once anyway);
on a slower or busier machine set ``TEST_TIMEOUT_SCALE=3`` and every poll deadline, fixture
wait and the per-test ``timeout`` of pytest-timeout (see tests/conftest.py) grows with it.
``E2E_DEADLINE_SCALE``, the end-to-end tier's older name for the same knob, is still
accepted as an alias (the new name wins when both are set).
"""

from __future__ import annotations

import os

SCALE_ENV = "TEST_TIMEOUT_SCALE"
ALIASES = ("E2E_DEADLINE_SCALE",)


def scale() -> float:
    """The factor from the environment; a bad value fails loudly rather than silently."""
    for name in (SCALE_ENV, *ALIASES):
        raw = os.environ.get(name, "")
        if raw:
            break
    else:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a positive number") from None
    if not value > 0:
        raise ValueError(f"{name}={raw!r}: expected a positive number")
    return value


def scaled(seconds: float) -> float:
    """``seconds`` (a base deadline) multiplied by ``TEST_TIMEOUT_SCALE``."""
    return seconds * scale()
