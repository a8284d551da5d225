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

from sidecar.core import shape
from sidecar.core.shape import JsonObject

VIRTUAL_NODE_TAINT = "virtual-node.interlink/no-schedule"
VIRTUAL_NODE_TYPE_LABEL = "virtual-node.interlink/type"
HOSTNAME_LABEL = "kubernetes.io/hostname"
_AFFINITY = "pod.spec.affinity.nodeAffinity"


def _targets_virtual_node(key: str, values: Iterable[str], node_name: str) -> bool:
    if key == VIRTUAL_NODE_TYPE_LABEL:
        return True
    return key == HOSTNAME_LABEL and bool(node_name) and node_name in set(values)


def _clean_term(term: JsonObject, path: str, node_name: str) -> JsonObject | None:
    """A node selector term without requirements on the virtual node; None if empty."""
    result = dict(term)
    expressions = [
        e
        for where, e in shape.objects_at(term, "matchExpressions", path)
        if not _targets_virtual_node(
            shape.string_at(e, "key", where), shape.strings_at(e, "values", where), node_name
        )
    ]
    fields = [
        f
        for where, f in shape.objects_at(term, "matchFields", path)
        if not (
            shape.string_at(f, "key", where) == "metadata.name"
            and node_name in shape.strings_at(f, "values", where)
        )
    ]
    for key, kept in (("matchExpressions", expressions), ("matchFields", fields)):
        if kept:
            result[key] = kept
        else:
            result.pop(key, None)
    return result or None


def _clean_node_affinity(spec: JsonObject, node_name: str) -> None:
    affinity = shape.object_at(spec, "affinity", "pod.spec")
    if affinity is None:
        return
    node_affinity = shape.object_at(affinity, "nodeAffinity", "pod.spec.affinity")
    if node_affinity is None:
        return
    required_key = "requiredDuringSchedulingIgnoredDuringExecution"
    required = shape.object_at(node_affinity, required_key, _AFFINITY)
    if required is not None:
        where = shape.child(_AFFINITY, required_key)
        terms = [
            t
            for t in (
                _clean_term(term, term_path, node_name)
                for term_path, term in shape.objects_at(required, "nodeSelectorTerms", where)
            )
            if t
        ]
        if terms:
            required["nodeSelectorTerms"] = terms
        else:
            node_affinity.pop(required_key)
    preferred_key = "preferredDuringSchedulingIgnoredDuringExecution"
    if node_affinity.get(preferred_key) is not None:
        kept = []
        for entry_path, entry in shape.objects_at(node_affinity, preferred_key, _AFFINITY):
            preference = shape.object_at(entry, "preference", entry_path) or {}
            term = _clean_term(preference, shape.child(entry_path, "preference"), node_name)
            if term:
                kept.append({**entry, "preference": term})
        if kept:
            node_affinity[preferred_key] = kept
        else:
            node_affinity.pop(preferred_key)
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
    node_name = shape.string_at(spec, "nodeName", "pod.spec")
    spec.pop("nodeName", None)
    tolerations = [
        t
        for where, t in shape.objects_at(spec, "tolerations", "pod.spec")
        if shape.string_at(t, "key", where) != VIRTUAL_NODE_TAINT
    ]
    for extra in node_tolerations:
        if dict(extra) not in tolerations:
            tolerations.append(dict(extra))
    if tolerations:
        spec["tolerations"] = tolerations
    else:
        spec.pop("tolerations", None)

    selector = {
        k: v
        for k, v in shape.string_map_at(spec, "nodeSelector", "pod.spec").items()
        if not _targets_virtual_node(k, [v], node_name)
    }
    selector.update(node_selector)
    if selector:
        spec["nodeSelector"] = selector
    else:
        spec.pop("nodeSelector", None)
    _clean_node_affinity(spec, node_name)
