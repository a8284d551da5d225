"""Which remote namespaces a pod may be written to.

Why this module exists: interLink cannot authenticate to its plugin (its ``SidecarURL``
is ``unix://`` or plain ``http://``), so whoever reaches the plugin API chooses the local
namespace of the pods it sends, and with an empty ``offloading.namespace_prefix`` (the
upstream default) or a prefix exclusion that namespace is the remote one. Without a
guard a pod lands in the remote ``kube-system``, where it can run as any of its
ServiceAccounts (the sidecar's remote rights are cluster-wide:
manifests/rbac/remote-rbac.yaml).

The check is on the REMOTE namespace (after the prefix rule), before anything is
journalled or written: a refused ``/create`` answers 403 naming the namespace and the
key that refuses it. Patterns are namespace names or prefixes ending in ``*``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sidecar.core.shape import WireError
from sidecar.settings import OWN_NAMESPACE_ENV, OffloadingSettings

FORBIDDEN = 403


def matching(namespace: str, patterns: Iterable[str]) -> str | None:
    """The first pattern ``namespace`` matches (``name`` exactly, ``prefix*`` by prefix)."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if namespace.startswith(pattern[:-1]):
                return pattern
        elif namespace == pattern:
            return pattern
    return None


def check_remote_namespace(
    remote_namespace: str, *, local_namespace: str, offloading: OffloadingSettings
) -> None:
    """Raise WireError(403) when pods may not be written to ``remote_namespace``.

    Deny wins over allow; the sidecar's own namespace is denied whatever the lists say.
    """
    where = f"remote namespace {remote_namespace!r}"
    if remote_namespace != local_namespace:
        where += f" (for local namespace {local_namespace!r})"
    denied = matching(remote_namespace, offloading.namespace_deny)
    if denied is not None:
        raise WireError(
            FORBIDDEN, f"{where} is refused: it matches {denied!r} in offloading.namespace_deny"
        )
    if offloading.own_namespace and remote_namespace == offloading.own_namespace:
        raise WireError(
            FORBIDDEN,
            f"{where} is refused: it is the sidecar's own namespace (${OWN_NAMESPACE_ENV})",
        )
    allow = offloading.namespace_allow
    if allow and matching(remote_namespace, allow) is None:
        allowed = ", ".join(allow)
        raise WireError(
            FORBIDDEN,
            f"{where} is refused: it matches nothing in offloading.namespace_allow ({allowed})",
        )
