"""What the sidecar left on the REMOTE cluster: every object of ours, found by label.

The sidecar labels everything it creates ``interlink.io=offloading`` (pods, ConfigMaps,
Secrets, PVCs, and the namespaces it creates). After a test deletes its pods, the
REMOTE must hold none of them, including a namespace the sidecar created (it deletes
it once nothing of ours is left in it). Read as the REMOTE admin, not as the sidecar.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from tests.localcluster import LocalCluster

OURS = "interlink.io=offloading"
UID_LABEL = "interlink.io/source.pod_uid"
_KINDS = (
    ("pod", "/api/v1/pods"),
    ("configmap", "/api/v1/configmaps"),
    ("secret", "/api/v1/secrets"),
    ("persistentvolumeclaim", "/api/v1/persistentvolumeclaims"),
)


def _items(remote: LocalCluster, path: str, selector: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"labelSelector": selector})
    answer: dict[str, Any] = remote.request("GET", f"{path}?{query}")
    return list(answer.get("items") or [])


def _describe(kind: str, obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    state = " (terminating)" if meta.get("deletionTimestamp") else ""
    return f"{kind} {where}{meta.get('name')}{state}"


def leftovers(remote: LocalCluster, *, pod_uid: str | None = None) -> list[str]:
    """Every object of ours on REMOTE (only those of local pod ``pod_uid`` if given;
    namespaces are shared, so they are listed only without ``pod_uid``)."""
    selector = OURS if pod_uid is None else f"{OURS},{UID_LABEL}={pod_uid}"
    found = [
        _describe(kind, obj) for kind, path in _KINDS for obj in _items(remote, path, selector)
    ]
    if pod_uid is None:
        found += [_describe("namespace", ns) for ns in _items(remote, "/api/v1/namespaces", OURS)]
    return found


def remote_pods(remote: LocalCluster, pod_uid: str) -> list[dict[str, Any]]:
    """The REMOTE pods made for local pod ``pod_uid``."""
    return _items(remote, "/api/v1/pods", f"{OURS},{UID_LABEL}={pod_uid}")
