"""Why a pod has no remote pod: never 'gone' while its create may still come or run."""

from __future__ import annotations

from typing import Any

from sidecar.status.absence import why_absent
from sidecar.status.mapping import AbsenceKind


def local(job_id: str | None = None) -> dict[str, Any]:
    annotations = {"JobID": job_id} if job_id is not None else {}
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "annotations": annotations}}


def test_a_create_in_flight_wins_over_everything() -> None:
    absence = why_absent(local("jid"), creating_since=10.0, deleted_at=None)
    assert absence.kind is AbsenceKind.CREATING and absence.since == 10.0


def test_without_job_id_the_create_has_not_arrived() -> None:
    assert why_absent(local(), creating_since=None, deleted_at=None).kind is (
        AbsenceKind.NOT_ARRIVED
    )
    assert why_absent(local(""), creating_since=None, deleted_at=None).kind is (
        AbsenceKind.NOT_ARRIVED
    )
    no_annotations = {"metadata": {"name": "p"}}
    assert why_absent(no_annotations, creating_since=None, deleted_at=None).kind is (
        AbsenceKind.NOT_ARRIVED
    )


def test_with_job_id_and_no_remote_pod_it_is_lost() -> None:
    assert why_absent(local("jid"), creating_since=None, deleted_at=None).kind is AbsenceKind.LOST


def test_a_known_deletion_is_reported_with_its_time() -> None:
    absence = why_absent(local("jid"), creating_since=None, deleted_at=42.0)
    assert absence.kind is AbsenceKind.DELETED and absence.since == 42.0
    # Deleted before its create finished (no JobID ever): gone, not "not arrived".
    assert why_absent(local(), creating_since=None, deleted_at=42.0).kind is AbsenceKind.DELETED
