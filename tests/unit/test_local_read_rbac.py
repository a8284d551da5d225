"""The local-cluster RBAC of the orphan sweep grants exactly one thing: list pods."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "rbac" / "local-read-rbac.yaml"


def test_the_local_read_role_lists_pods_and_nothing_else() -> None:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount"]
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {("", "pods", "list")}
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    assert account["automountServiceAccountToken"] is False
