"""A 403 from the remote API server is the pod's fault (admission: PodSecurity, quota)
or the sidecar's (RBAC): the two read differently and get different answers; every
remote failure is typed by its status and answered from one table."""

from __future__ import annotations

import pytest

from sidecar.remote.errors import (
    RemoteConflict,
    RemoteError,
    RemoteForbidden,
    RemoteGone,
    RemoteInvalid,
    RemoteNotFound,
    RemoteUnreachable,
)


@pytest.mark.parametrize(
    ("message", "rbac"),
    [
        (
            'pods is forbidden: User "system:serviceaccount:interlink-remote:interlink-sidecar"'
            ' cannot create resource "pods" in API group "" in the namespace "offloading-x"',
            True,
        ),
        (
            'configmaps is forbidden: User "sidecar" cannot list resource "configmaps" in API'
            ' group "" at the cluster scope',
            True,
        ),
        (
            'pods "web-1" is forbidden: violates PodSecurity "restricted:latest":'
            " allowPrivilegeEscalation != false",
            False,
        ),
        (
            'pods "web-1" is forbidden: exceeded quota: compute, requested: cpu=2,'
            " used: cpu=9, limited: cpu=10",
            False,
        ),
    ],
)
def test_rbac_denials_are_told_from_admission_denials(message: str, rbac: bool) -> None:
    denial = RemoteError(403, "Forbidden", message)
    assert isinstance(denial, RemoteForbidden)
    assert denial.by_rbac is rbac
    # The sidecar's credentials: the remote side failed; admission: the pod's fault.
    assert denial.plugin_status() == (502 if rbac else 422)


@pytest.mark.parametrize(
    ("status", "kind", "answer"),
    [
        (0, RemoteUnreachable, 503),
        (400, RemoteInvalid, 422),
        (422, RemoteInvalid, 422),
        (404, RemoteNotFound, 404),
        (409, RemoteConflict, 502),
        (410, RemoteGone, 502),
        (401, RemoteError, 502),
        (429, RemoteError, 502),
        (500, RemoteError, 502),
    ],
)
def test_a_remote_failure_is_typed_by_its_status_and_answered_from_one_table(
    status: int, kind: type[RemoteError], answer: int
) -> None:
    made = RemoteError.from_body(status, b'{"reason": "R", "message": "m"}')
    assert type(made) is kind
    assert (made.status, made.reason, made.message) == (status, "R", "m")
    assert made.plugin_status() == answer
    with pytest.raises(kind):
        raise made
