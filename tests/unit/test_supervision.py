"""Root tasks: the first one to end is reported by name; a stop request is not an error."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.supervision import RootTasks


async def forever() -> None:
    await asyncio.Event().wait()


async def crash(started: asyncio.Event) -> None:
    await started.wait()
    raise RuntimeError("watch exploded")


async def test_a_crashing_root_task_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    tasks = RootTasks()
    go = asyncio.Event()
    tasks.start("steady", forever())
    tasks.start("watcher", crash(go))
    go.set()
    result = await tasks.wait_first_exit(asyncio.Event())
    assert result.task == "watcher"
    assert isinstance(result.error, RuntimeError)
    assert "root task 'watcher' crashed" in caplog.text
    assert tasks.alive() == {"steady": True, "watcher": False}
    await tasks.stop(["steady"], timeout=5)
    assert tasks.alive() == {"steady": False, "watcher": False}


async def test_a_returning_root_task_is_unexpected(caplog: pytest.LogCaptureFixture) -> None:
    async def quits() -> None:
        return None

    tasks = RootTasks()
    tasks.start("quitter", quits())
    result = await tasks.wait_first_exit(asyncio.Event())
    assert result.task == "quitter" and result.error is None
    assert "ended unexpectedly" in caplog.text


async def test_stop_request_is_not_a_task_exit() -> None:
    tasks = RootTasks()
    tasks.start("steady", forever())
    stop = asyncio.Event()
    stop.set()
    result = await tasks.wait_first_exit(stop)
    assert result.task is None
    await tasks.stop(["steady"], timeout=5)
    assert tasks.alive() == {"steady": False}
