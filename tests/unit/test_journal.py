"""The delete journal: pending deletes and tombstones survive a restart; tombstones expire."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sidecar.offload.journal import DeleteJournal, JournalError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_delete_leaves_a_tombstone_that_survives_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = DeleteJournal(tmp_path, tombstone_seconds=600, clock=clock)
    journal.load()
    await journal.add("u1", namespace="ns", name="p", tombstone=True)
    await journal.remove("u1")  # the delete finished: no longer pending ...
    assert "u1" not in journal
    assert journal.deleted_at("u1") == clock.now  # ... but remembered as deleted

    again = DeleteJournal(tmp_path, tombstone_seconds=600, clock=clock)
    again.load()
    assert again.deleted_at("u1") == clock.now
    clock.now += 601
    assert again.deleted_at("u1") is None


async def test_expired_tombstones_leave_the_file(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = DeleteJournal(tmp_path, tombstone_seconds=600, clock=clock)
    journal.load()
    await journal.add("old", namespace="ns", name="p", tombstone=True)
    clock.now += 601
    await journal.add("new", namespace="ns", name="q", tombstone=True)
    data = json.loads(journal.path.read_text())
    assert set(data["tombstones"]) == {"new"}
    assert set(data["pending"]) == {"old", "new"}  # pending deletes never expire
    assert journal.tombstones() == 1


async def test_a_rollback_leftover_is_pending_but_no_tombstone(tmp_path: Path) -> None:
    journal = DeleteJournal(tmp_path)
    journal.load()
    await journal.add("u1", namespace="ns", name="p", tombstone=False)
    assert "u1" in journal and journal.deleted_at("u1") is None


def test_the_first_format_is_read_as_pending_and_tombstoned(tmp_path: Path) -> None:
    clock = FakeClock()
    entry = {"pod_uid": "u1", "namespace": "ns", "name": "p", "since": clock.now - 5}
    (tmp_path / "pending-deletes.json").write_text(json.dumps({"u1": entry}))
    journal = DeleteJournal(tmp_path, clock=clock)
    journal.load()
    assert "u1" in journal and journal.deleted_at("u1") == clock.now - 5


def test_a_broken_file_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "pending-deletes.json").write_text('{"version": 2, "pending": []}')
    with pytest.raises(JournalError, match=r"app.state_dir: cannot use .*pending-deletes.json"):
        DeleteJournal(tmp_path).load()
