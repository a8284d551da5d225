"""Translating a ``RetrievedPodData`` into the remote objects of one pod (an OffloadPlan).

Works on the raw pod JSON the virtual kubelet sent: whatever is not named here reaches
the remote pod unchanged (probes, lifecycle hooks, securityContext, resources,
imagePullSecrets, runtimeClassName, native sidecars, ...). Every change is listed in
``rewrites.REWRITES`` (and in the README). Pure: no I/O, the input is not modified.
"""

from __future__ import annotations

import copy

from sidecar.core import naming, shape
from sidecar.core.pods import CreateRequest
from sidecar.core.shape import JsonObject
from sidecar.offload import mesh
from sidecar.offload.env import translate_env
from sidecar.offload.namespace_guard import check_remote_namespace
from sidecar.offload.plan import OffloadPlan
from sidecar.offload.scheduling import translate_scheduling
from sidecar.offload.volumes import translate_volumes
from sidecar.settings import MeshSettings, OffloadingSettings

SERVER_OWNED_METADATA = (
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
# Filled in by admission plugins from classes the remote cluster has its own version of.
_ADMISSION_COMPUTED = ("priority", "overhead")


def remote_namespace_for(namespace: str, offloading: OffloadingSettings) -> str:
    return naming.remote_namespace(
        namespace,
        prefix=offloading.namespace_prefix,
        exclusions=offloading.namespace_prefix_exclusions,
    )


def build_plan(
    request: CreateRequest, *, offloading: OffloadingSettings, mesh_settings: MeshSettings
) -> OffloadPlan:
    """The remote objects for ``request``. Raises WireError(422) for what cannot work,
    WireError(403) for a remote namespace pods may not be written to."""
    ref = request.ref
    plan = OffloadPlan(ref=ref, namespace=remote_namespace_for(ref.namespace, offloading), pod={})
    check_remote_namespace(plan.namespace, local_namespace=ref.namespace, offloading=offloading)
    source_meta = shape.as_object(request.pod.get("metadata"), "pod.metadata")
    annotations: JsonObject = dict(shape.string_map_at(source_meta, "annotations", "pod.metadata"))
    labels = shape.string_map_at(source_meta, "labels", "pod.metadata")
    spec: JsonObject = copy.deepcopy(shape.as_object(request.pod.get("spec"), "pod.spec"))

    names = translate_volumes(
        spec, retrieved=request.containers, annotations=annotations, plan=plan
    )
    translate_env(spec, names=names, pod=ref)
    translate_scheduling(
        spec, node_selector=offloading.node_selector, node_tolerations=offloading.node_tolerations
    )
    spec.pop("serviceAccountName", None)
    spec.pop("serviceAccount", None)
    spec["automountServiceAccountToken"] = False
    for key in _ADMISSION_COMPUTED:
        spec.pop(key, None)
    if spec.pop("ephemeralContainers", None):
        plan.warnings.append(
            f"pod {ref.namespace}/{ref.name}: ephemeral containers dropped "
            "(they cannot be set when a pod is created)"
        )
    mesh.add_mesh(spec, annotations=annotations, settings=mesh_settings, plan=plan)

    meta: JsonObject = copy.deepcopy(source_meta)
    for key in SERVER_OWNED_METADATA:
        meta.pop(key, None)
    mesh.strip_secret_annotations(annotations)
    meta["name"] = naming.scoped_name(ref.name, ref.uid)
    meta["namespace"] = plan.namespace
    meta["labels"] = {**labels, **naming.ownership_labels(ref.uid)}
    meta["annotations"] = {
        **annotations,
        **naming.ownership_annotations(source_uid=ref.uid, name=ref.name, namespace=ref.namespace),
    }
    # The virtual node the pod is bound to (the orphan sweep judges liveness per node);
    # never a value the pod brought itself.
    node = (request.pod.get("spec") or {}).get("nodeName")
    meta["annotations"].pop(naming.SOURCE_NODE_NAME_ANNOTATION, None)
    if isinstance(node, str) and node:
        meta["annotations"][naming.SOURCE_NODE_NAME_ANNOTATION] = node
    plan.pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    return plan
