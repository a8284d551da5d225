"""First translation of a local pod into its remote pod (walking skeleton).

Works on the raw pod JSON the virtual kubelet sent, so every field it does not touch
reaches the remote pod unchanged. Rewrites, each listed in the README:

* metadata: remote name and namespace (see ``naming``), the ownership labels and
  annotations added; server-owned fields (uid, resourceVersion, timestamps, owner
  references, managed fields, finalizers) removed;
* ``spec.nodeName`` and ``status`` removed: the remote scheduler places the pod;
* the virtual node's toleration (``virtual-node.interlink/no-schedule``) removed;
* ``offloading.node_selector`` merged into ``nodeSelector`` and
  ``offloading.node_tolerations`` appended to ``tolerations`` (upstream replaced them);
* service account: the local one does not exist remotely, so ``serviceAccountName`` is
  dropped and ``automountServiceAccountToken`` set to false (the remote default service
  account must not lend its token to an offloaded pod);
* volumes: only ``emptyDir`` is kept for now; other volumes and their mounts are dropped
  (ConfigMaps, Secrets, projected data and PVCs are copied in a later version).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from sidecar.api.wire import JsonObject, PodRef
from sidecar.offload import naming

VIRTUAL_NODE_TAINT = "virtual-node.interlink/no-schedule"

_SERVER_OWNED_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "ownerReferences",
    "managedFields",
    "finalizers",
    "selfLink",
    "generateName",
)
_KEPT_VOLUME_TYPES = ("emptyDir",)
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def remote_pod(
    pod: JsonObject,
    ref: PodRef,
    *,
    namespace: str,
    node_selector: Mapping[str, str],
    node_tolerations: Iterable[Mapping[str, Any]],
) -> JsonObject:
    """The remote pod for ``pod`` in remote ``namespace``. ``pod`` is not modified."""
    meta = copy.deepcopy(pod.get("metadata") or {})
    for key in _SERVER_OWNED_METADATA:
        meta.pop(key, None)
    meta["name"] = naming.scoped_name(ref.name, ref.uid)
    meta["namespace"] = namespace
    meta["labels"] = {**(meta.get("labels") or {}), **naming.ownership_labels(ref.uid)}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        **naming.ownership_annotations(source_uid=ref.uid, name=ref.name, namespace=ref.namespace),
    }

    spec = copy.deepcopy(pod.get("spec") or {})
    spec.pop("nodeName", None)
    spec.pop("serviceAccountName", None)
    spec.pop("serviceAccount", None)
    spec["automountServiceAccountToken"] = False
    tolerations = [t for t in spec.get("tolerations") or [] if t.get("key") != VIRTUAL_NODE_TAINT]
    tolerations.extend(dict(t) for t in node_tolerations if dict(t) not in tolerations)
    if tolerations:
        spec["tolerations"] = tolerations
    else:
        spec.pop("tolerations", None)
    if node_selector:
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **node_selector}
    _keep_supported_volumes(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _keep_supported_volumes(spec: JsonObject) -> None:
    volumes = spec.get("volumes") or []
    kept = [v for v in volumes if any(t in v for t in _KEPT_VOLUME_TYPES)]
    kept_names = {v.get("name") for v in kept}
    if kept:
        spec["volumes"] = kept
    else:
        spec.pop("volumes", None)
    for list_name in _CONTAINER_LISTS:
        for container in spec.get(list_name) or []:
            mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") in kept_names]
            if mounts:
                container["volumeMounts"] = mounts
            else:
                container.pop("volumeMounts", None)
