"""Remote names, labels and annotations: how a local pod maps to its remote objects.

The rules are the upstream plugin's, so objects it created are recognised, with its two
naming bugs fixed: the pod uid is never cut from an object name (upstream truncated
``name-uid`` to 63 characters, so long names lost the uid and two pods could collide),
and remote namespace names never exceed 63 characters.

Objects are found by the ``interlink.io/source.pod_uid`` label, never by guessing names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

OFFLOADING_LABEL = "interlink.io"
OFFLOADING_VALUE = "offloading"
POD_UID_LABEL = "interlink.io/source.pod_uid"
SOURCE_UID_ANNOTATION = "interlink.io/source.uid"
SOURCE_NAME_ANNOTATION = "interlink.io/source.name"
SOURCE_NAMESPACE_ANNOTATION = "interlink.io/source.namespace"
# On the remote pod only: the virtual node (local ``spec.nodeName``) the pod is bound
# to. The orphan sweep judges "interLink stopped asking about this pod" per virtual
# node, so one dead virtual kubelet's pods are not judged by another one's liveness.
SOURCE_NODE_NAME_ANNOTATION = "interlink.io/source.node_name"

# Kubernetes object names used here are DNS labels/subdomains capped at 63 characters:
# a pod's hostname is derived from its name, and namespaces are DNS labels.
MAX_NAME = 63

_INVALID = re.compile(r"[^a-z0-9.-]")
_EDGE = re.compile(r"^[^a-z0-9]+|[^a-z0-9]+$")


def sanitize(name: str) -> str:
    """Lower-case, replace characters outside ``[a-z0-9.-]`` by ``-``, trim the edges."""
    return _EDGE.sub("", _INVALID.sub("-", name.lower()))


def scoped_name(name: str, pod_uid: str) -> str:
    """``<name>-<pod uid>``, sanitised, at most 63 characters; the uid is never cut.

    Equal to upstream's ``sanitize((name + "-" + uid)[:63])`` whenever upstream kept the
    whole uid (names of up to 26 characters), so upgrades find the same objects.
    """
    uid = sanitize(pod_uid)
    if not uid:
        return sanitize(name)[:MAX_NAME].rstrip(".-")
    room = MAX_NAME - len(uid) - 1
    head = sanitize(name)[: max(room, 0)]
    head = _EDGE.sub("", head)
    return f"{head}-{uid}" if head else uid[:MAX_NAME]


def remote_namespace(namespace: str, *, prefix: str, exclusions: Iterable[str]) -> str:
    """``<prefix>-<namespace>`` unless excluded or no prefix; at most 63 characters.

    A name that would be too long keeps its first characters and ends with 8 hex digits
    of a hash of the whole name, so distinct local namespaces stay distinct.
    """
    if not prefix or namespace in set(exclusions):
        return namespace
    full = f"{prefix}-{namespace}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: MAX_NAME - 9].rstrip('-')}-{digest}"


def ownership_labels(pod_uid: str) -> dict[str, str]:
    """Labels every remote object of a pod carries (the lookup key)."""
    return {OFFLOADING_LABEL: OFFLOADING_VALUE, POD_UID_LABEL: pod_uid}


def ownership_annotations(*, source_uid: str, name: str, namespace: str) -> dict[str, str]:
    """Annotations naming the local object a remote object was made from."""
    return {
        SOURCE_UID_ANNOTATION: source_uid,
        SOURCE_NAME_ANNOTATION: name,
        SOURCE_NAMESPACE_ANNOTATION: namespace,
    }


OURS_SELECTOR = f"{OFFLOADING_LABEL}={OFFLOADING_VALUE}"
"""Label selector for every remote object the sidecar (or upstream) made."""


def pod_selector(pod_uid: str) -> str:
    """Label selector for all remote objects of one local pod."""
    return f"{OFFLOADING_LABEL}={OFFLOADING_VALUE},{POD_UID_LABEL}={pod_uid}"
