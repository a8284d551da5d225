"""Scheduling fields: forget the virtual node, add the operator's remote constraints.

The pod arrives bound to the virtual node (``spec.nodeName``), tolerating its taint
``virtual-node.interlink/no-schedule`` and often selecting it by its labels
(``virtual-node.interlink/type``, ``kubernetes.io/hostname: <virtual node>``). None of that
exists remotely: kept, it would leave the remote pod unschedulable. Requirements on
other labels are the user's and stay. ``offloading.node_selector`` is merged into
``nodeSelector`` (its value wins on the same key: it describes the remote cluster), and
``offloading.node_tolerations`` are appended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sidecar.api.wire import JsonObject

VIRTUAL_NODE_TAINT = "virtual-node.interlink/no-schedule"
VIRTUAL_NODE_TYPE_LABEL = "virtual-node.interlink/type"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def _targets_virtual_node(key: str, values: Iterable[str], node_name: str) -> bool:
    if key == VIRTUAL_NODE_TYPE_LABEL:
        return True
    return key == HOSTNAME_LABEL and bool(node_name) and node_name in set(values)


def _clean_term(term: JsonObject, node_name: str) -> JsonObject | None:
    """A node selector term without requirements on the virtual node; None if empty."""
    result = dict(term)
    expressions = [
        e
        for e in term.get("matchExpressions") or []
        if not _targets_virtual_node(e.get("key", ""), e.get("values") or [], node_name)
    ]
    fields = [
        f
        for f in term.get("matchFields") or []
        if not (f.get("key") == "metadata.name" and node_name in (f.get("values") or []))
    ]
    for key, kept in (("matchExpressions", expressions), ("matchFields", fields)):
        if kept:
            result[key] = kept
        else:
            result.pop(key, None)
    return result or None


def _clean_node_affinity(spec: JsonObject, node_name: str) -> None:
    affinity = spec.get("affinity")
    if not isinstance(affinity, dict):
        return
    node_affinity = affinity.get("nodeAffinity")
    if not isinstance(node_affinity, dict):
        return
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(required, dict):
        terms = [
            t
            for t in (_clean_term(t, node_name) for t in required.get("nodeSelectorTerms") or [])
            if t
        ]
        if terms:
            required["nodeSelectorTerms"] = terms
        else:
            node_affinity.pop("requiredDuringSchedulingIgnoredDuringExecution")
    preferred = node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
    if isinstance(preferred, list):
        kept = []
        for entry in preferred:
            term = _clean_term(entry.get("preference") or {}, node_name)
            if term:
                kept.append({**entry, "preference": term})
        if kept:
            node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = kept
        else:
            node_affinity.pop("preferredDuringSchedulingIgnoredDuringExecution")
    if not node_affinity:
        affinity.pop("nodeAffinity")
    if not affinity:
        spec.pop("affinity")


def translate_scheduling(
    spec: JsonObject,
    *,
    node_selector: Mapping[str, str],
    node_tolerations: Iterable[Mapping[str, Any]],
) -> None:
    """Rewrite ``spec`` in place (see the module docstring)."""
    node_name = str(spec.pop("nodeName", "") or "")
    tolerations = [t for t in spec.get("tolerations") or [] if t.get("key") != VIRTUAL_NODE_TAINT]
    for extra in node_tolerations:
        if dict(extra) not in tolerations:
            tolerations.append(dict(extra))
    if tolerations:
        spec["tolerations"] = tolerations
    else:
        spec.pop("tolerations", None)

    selector = {
        k: v
        for k, v in (spec.get("nodeSelector") or {}).items()
        if not _targets_virtual_node(k, [v], node_name)
    }
    selector.update(node_selector)
    if selector:
        spec["nodeSelector"] = selector
    else:
        spec.pop("nodeSelector", None)
    _clean_node_affinity(spec, node_name)
