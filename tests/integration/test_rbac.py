"""The remote-cluster RBAC of ``manifests/rbac/remote-rbac.yaml``, judged by the real API
server: its ServiceAccount is refused what the manifest does not grant, and in
``SIDECAR_TEST_RBAC=manifests`` mode the sidecar really is that ServiceAccount (the rest
of the integration suite, run in that mode, is the proof that the rules are enough).
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.deadlines import scaled
from tests.fixtures.controlplane import REMOTE_RBAC
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane


def _service_account() -> tuple[str, str]:
    docs = [d for d in yaml.safe_load_all(REMOTE_RBAC.read_text()) if d]
    (meta,) = [d["metadata"] for d in docs if d["kind"] == "ServiceAccount"]
    return meta["namespace"], meta["name"]


NAMESPACE, NAME = _service_account()
USER = f"system:serviceaccount:{NAMESPACE}:{NAME}"


def call(
    cluster: LocalCluster,
    token: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """(status, parsed body) of one request with ``token``; errors are answers too."""
    context = ssl.create_default_context(cafile=str(cluster.ca_cert))
    request = urllib.request.Request(
        cluster.server + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": (
                "application/merge-patch+json" if method == "PATCH" else "application/json"
            ),
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def sa_token(control_plane: LocalCluster) -> Iterator[str]:
    """A token of the manifest's ServiceAccount: the sidecar's own in RBAC mode, else
    one made here after applying the manifest (so the refusals are checked in both)."""
    if control_plane.sidecar_rbac is not None:
        yield control_plane.sidecar_token
        return
    control_plane.apply_manifest(REMOTE_RBAC)
    token = control_plane.service_account_token(NAMESPACE, NAME, seconds=3600)
    deadline = time.monotonic() + scaled(30)
    # The RBAC authorizer learns new bindings from a watch: wait for a granted read.
    while call(control_plane, token, "GET", "/api/v1/nodes")[0] != 200:
        assert time.monotonic() < deadline, "the manifest's bindings never took effect"
        time.sleep(0.2)  # polling a condition with a deadline
    yield token


def test_granted_reads_are_allowed(control_plane: LocalCluster, sa_token: str) -> None:
    """The control for the refusals below: the token works and the rules apply."""
    for path in ("/api/v1/nodes", "/api/v1/pods?limit=1", "/api/v1/namespaces/default"):
        status, body = call(control_plane, sa_token, "GET", path)
        assert status == 200, (path, body)


def _node(cluster: LocalCluster) -> str:
    return cluster.node_names[0] if cluster.node_names else "kwok-node-0"


# (what, method, path, body, extra headers): everything outside the manifest's rules.
REFUSED: list[tuple[str, str, str, Any, dict[str, str]]] = [
    ("delete a node", "DELETE", "/api/v1/nodes/{node}", None, {}),
    ("read one node", "GET", "/api/v1/nodes/{node}", None, {}),
    ("list namespaces", "GET", "/api/v1/namespaces", None, {}),
    ("label a namespace", "PATCH", "/api/v1/namespaces/default", {"metadata": {}}, {}),
    (
        "bind itself to cluster-admin",
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "interlink-sidecar-escalation"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
        {},
    ),
    ("list roles", "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", None, {}),
    (
        "mint a token of another ServiceAccount",
        "POST",
        "/api/v1/namespaces/kube-system/serviceaccounts/default/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        {},
    ),
    (
        "watch secrets",
        "GET",
        "/api/v1/namespaces/kube-system/secrets?watch=true&timeoutSeconds=1",
        None,
        {},
    ),
    (
        "update a secret",
        "PUT",
        "/api/v1/namespaces/kube-system/secrets/anything",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "anything"}},
        {},
    ),
    ("exec into a pod", "POST", "/api/v1/namespaces/default/pods/any/exec?command=sh", None, {}),
    ("attach to a pod", "POST", "/api/v1/namespaces/default/pods/any/attach", None, {}),
    (
        "create a Service",
        "POST",
        "/api/v1/namespaces/default/services",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}},
        {},
    ),
    ("list deployments", "GET", "/apis/apps/v1/deployments", None, {}),
    ("impersonate admin", "GET", "/api/v1/namespaces", None, {"Impersonate-User": "admin"}),
    (
        "impersonate system:masters",
        "GET",
        "/api/v1/nodes",
        None,
        {"Impersonate-User": "x", "Impersonate-Group": "system:masters"},
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_what_the_manifest_does_not_grant_is_refused(
    control_plane: LocalCluster,
    sa_token: str,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    status, answer = call(
        control_plane,
        sa_token,
        method,
        path.format(node=_node(control_plane)),
        body,
        headers=headers,
    )
    assert status == 403, answer
    # Refused as the ServiceAccount (authenticated, not authorized).
    assert USER in answer["message"], answer


def test_sidecar_identity_follows_the_mode(control_plane: LocalCluster) -> None:
    """The identity in ``sidecar.kubeconfig``, as the API server sees it
    (SelfSubjectReview): the manifest's ServiceAccount, without system:masters, in
    RBAC mode; the static cluster-admin user ``sidecar`` otherwise."""
    kubeconfig = json.loads(control_plane.sidecar_kubeconfig.read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    status, review = call(
        control_plane,
        token,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert status == 201, review
    user = review["status"]["userInfo"]
    assert user["username"] == control_plane.sidecar_user
    if control_plane.sidecar_rbac is not None:
        assert user["username"] == USER
        assert "system:masters" not in user.get("groups", [])
        assert f"system:serviceaccounts:{NAMESPACE}" in user["groups"]
    else:
        assert user["username"] == "sidecar"
        assert "system:masters" in user["groups"]
