"""Metadata for remote objects: names, the ownership labels and annotations."""

from __future__ import annotations

from sidecar.core import naming
from sidecar.core.pods import PodRef
from sidecar.core.shape import JsonObject

# Marks objects (PVCs) the sidecar created itself, as opposed to ones that existed
# remotely before: only the former may ever be deleted by the sidecar.
CREATED_BY_ANNOTATION = "interlink.io/created-by"
CREATED_BY_VALUE = "interlink-k8s-sidecar"


def owned_metadata(
    *, name: str, namespace: str, ref: PodRef, source: JsonObject | None = None
) -> JsonObject:
    """Metadata of a remote object made for pod ``ref`` from local object ``source``."""
    source_meta = (source or {}).get("metadata") or {}
    return {
        "name": name,
        "namespace": namespace,
        "labels": naming.ownership_labels(ref.uid),
        "annotations": naming.ownership_annotations(
            source_uid=str(source_meta.get("uid") or ref.uid),
            name=str(source_meta.get("name") or ref.name),
            namespace=str(source_meta.get("namespace") or ref.namespace),
        ),
    }
