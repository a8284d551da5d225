"""The delete journal: pending deletes and tombstones survive a restart; tombstones expire."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sidecar.offload.journal import DeleteJournal, InvalidEntry, JournalError


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


def test_an_unusable_directory_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(JournalError, match=r"app.state_dir: .*file/sub is not writable"):
        DeleteJournal(tmp_path / "file" / "sub").load()


# --- poisoned entries -----------------------------------------------------------------------


async def test_add_refuses_what_kubernetes_would_and_changes_nothing(tmp_path: Path) -> None:
    journal = DeleteJournal(tmp_path)
    journal.load()
    for uid, namespace in [
        ("x" * 10_000_000, "ns"),  # the 10 MB uid of the hostile test
        ("a b", "ns"),
        ("", "ns"),
        ("-starts-with-dash", "ns"),
        ("u1", "Upper"),
        ("u1", "a" * 64),
        ("u1", "."),
    ]:
        with pytest.raises(InvalidEntry) as caught:
            await journal.add(uid, namespace=namespace, name="p", tombstone=True)
        assert caught.value.status == 422
        assert len(caught.value.message) < 300, "the message must not carry the value"
    assert len(journal) == 0 and journal.tombstones() == 0
    assert not journal.path.exists()


async def test_bad_entries_on_load_are_dropped_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"pod_uid": "good-uid", "namespace": "offloading-default", "name": "p", "since": 1.0}
    huge = "y" * 5_000_000
    data = {
        "version": 2,
        "pending": {
            "good-uid": good,
            huge: {**good, "pod_uid": huge},
            "bad-ns": {**good, "pod_uid": "bad-ns", "namespace": "Not_A_Label"},
            "no-since": {k: v for k, v in good.items() if k != "since"} | {"pod_uid": "no-since"},
            "not-object": 7,
            "mismatch": {**good, "pod_uid": "other"},
        },
        "tombstones": {"good-uid": 1.0, huge: 2.0, "t-bad-time": "yesterday"},
    }
    (tmp_path / "pending-deletes.json").write_text(json.dumps(data))
    journal = DeleteJournal(tmp_path, clock=lambda: 10.0)
    journal.load()
    assert [e.pod_uid for e in journal.entries()] == ["good-uid"]
    assert journal.deleted_at("good-uid") == 1.0 and journal.tombstones() == 1
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 7, [r.getMessage()[:200] for r in warnings]
    assert all(len(r.getMessage()) < 1000 for r in warnings)
    assert any("bad-ns" in r.getMessage() and "DNS label" in r.getMessage() for r in warnings)
    rewritten = json.loads(journal.path.read_text())  # the poison is gone from the file
    assert set(rewritten["pending"]) == {"good-uid"} and set(rewritten["tombstones"]) == {
        "good-uid"
    }


def test_a_file_that_is_not_json_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "pending-deletes.json").write_text('{"version": 2, "pending": {')
    journal = DeleteJournal(tmp_path)
    journal.load()
    assert len(journal) == 0
    [aside] = tmp_path.glob("pending-deletes.json.unreadable-*")
    assert aside.read_text().startswith('{"version"')
    assert any(r.levelname == "ERROR" and str(aside) in r.getMessage() for r in caplog.records)


def test_a_wrong_structure_loses_only_that_part(tmp_path: Path) -> None:
    (tmp_path / "pending-deletes.json").write_text(
        '{"version": 2, "pending": [], "tombstones": {"u1": 5}}'
    )
    journal = DeleteJournal(tmp_path, clock=lambda: 10.0)
    journal.load()
    assert len(journal) == 0 and journal.deleted_at("u1") == 5


# --- an unwritable journal ------------------------------------------------------------------


def _block_writes(journal: DeleteJournal) -> Path:
    """Make every write fail (an OSError like ENOSPC/EROFS), without mounts: the
    temporary file's name is taken by a directory."""
    blocker = journal.path.with_suffix(".tmp")
    blocker.mkdir()
    (blocker / "x").write_text("")
    return blocker


async def test_a_failed_write_is_reported_kept_in_memory_and_written_later(
    tmp_path: Path,
) -> None:
    journal = DeleteJournal(tmp_path)
    journal.load()
    await journal.add("u0", namespace="ns", name="p", tombstone=True)
    blocker = _block_writes(journal)
    assert await journal.add("u1", namespace="ns", name="p", tombstone=True) is False
    assert journal.problem is not None and "app.state_dir" in journal.problem
    assert "u1" in journal and journal.deleted_at("u1") is not None
    await journal.remove("u0")  # never raises: the delete is done either way
    await journal.check()
    assert journal.problem is not None

    (blocker / "x").unlink()
    blocker.rmdir()
    await journal.check()
    assert journal.problem is None
    data = json.loads(journal.path.read_text())
    assert set(data["pending"]) == {"u1"}, "what only memory held is on disk now"
    assert await journal.add("u2", namespace="ns", name="p", tombstone=True) is True


async def test_check_probes_the_directory_when_nothing_waits(tmp_path: Path) -> None:
    journal = DeleteJournal(tmp_path)
    journal.load()
    await journal.check()
    assert journal.problem is None
    probe = tmp_path / ".write-check"
    probe.mkdir()  # the probe file cannot be written
    await journal.check()
    assert journal.problem is not None
    probe.rmdir()
    await journal.check()
    assert journal.problem is None


# --- dead letters ---------------------------------------------------------------------------


async def test_a_dead_entry_stays_in_the_file_with_its_story(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = DeleteJournal(tmp_path, clock=clock)
    journal.load()
    await journal.add("u1", namespace="ns", name="p", tombstone=True)
    journal.note_failure("u1", "403 Forbidden: " + "z" * 10_000, answered=True)
    journal.note_failure("u1", "unreachable", answered=False)
    journal.note_failure("u1", "still terminating", answered=True)
    entry = journal.get("u1")
    assert entry is not None and entry.attempts == 2 and entry.last_error == "still terminating"
    journal.note_failure("u1", "403 Forbidden: " + "z" * 10_000, answered=True)
    clock.now += 5
    await journal.mark_dead("u1")
    assert journal.dead_count() == 1

    again = DeleteJournal(tmp_path, clock=clock)
    again.load()
    [dead] = again.dead()
    assert dead.dead_since == clock.now and dead.attempts == 3
    assert len(dead.last_error) < 400 and dead.last_error.startswith("403 Forbidden")
    assert len(again) == 1  # still pending: not finished

    await again.add("u1", namespace="ns", name="p", tombstone=True)  # a new /delete
    revived = again.get("u1")
    assert revived is not None and not revived.dead and revived.attempts == 0
