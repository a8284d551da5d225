"""A 403 from the remote API server is the pod's fault (admission: PodSecurity, quota)
or the sidecar's (RBAC): the two read differently and get different answers."""

from __future__ import annotations

import pytest

from sidecar.offload.service import _RBAC_DENIAL


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
    assert (_RBAC_DENIAL.search(message) is not None) is rbac
