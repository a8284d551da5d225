"""Environment references: renamed to the copied objects, or refused when they cannot
resolve remotely.

By default the virtual kubelet resolves ``env[].valueFrom`` and ``envFrom`` into plain
values before interLink sees the pod; with ``SkipDownwardAPIResolution`` (or when a
lookup failed) references remain (interlink-plugin-api.md §10.2). interLink only sends
volume-mounted ConfigMaps and Secrets, so:

* a reference to a copied object is renamed to the copy;
* an optional reference to an object that was not sent is renamed anyway (it stays
  unresolved remotely, which for ``optional: true`` means "unset", as locally);
* a required reference to an object that was not sent is refused with 422 naming the
  field: the remote container would never start (upstream silently sent ``{}``);
* ``fieldRef`` to ``metadata.name``, ``metadata.namespace`` or ``metadata.uid`` becomes the
  local value: the remote pod's own name and uid differ, the application expects the
  local ones.
"""

from __future__ import annotations

from sidecar.core import naming, shape
from sidecar.core.pods import PodRef
from sidecar.core.shape import JsonObject, WireError
from sidecar.offload.volumes import CopiedNames, containers_of

_LOCAL_FIELDS = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}
_SERVICE_ACCOUNT_FIELD = "spec.serviceAccountName"
"""Resolved to the local value too: the remote pod loses its service account (it does
not exist there), so the remote kubelet would say ``default``."""


# Reference field -> kind of the object it names (env[].valueFrom and envFrom[]).
_REFERENCES = {
    "configMapKeyRef": "ConfigMap",
    "secretKeyRef": "Secret",
    "configMapRef": "ConfigMap",
    "secretRef": "Secret",
}


def _rename_references(source: JsonObject, *, names: CopiedNames, where: str, pod: PodRef) -> None:
    """Rename the ConfigMap/Secret reference in ``source`` to its copy, or refuse it."""
    for field, kind in _REFERENCES.items():
        ref = shape.object_at(source, field, where)
        if ref is None:
            continue
        ref_path = shape.child(where, field)
        copied = names.config_maps if kind == "ConfigMap" else names.secrets
        name = shape.string_at(ref, "name", ref_path)
        if name in copied:
            ref["name"] = copied[name]
        elif shape.bool_at(ref, "optional", ref_path):
            ref["name"] = naming.scoped_name(name, pod.uid)
        else:
            raise WireError(
                422,
                f"{ref_path}: {kind} {shape.preview(name)} cannot be resolved remotely "
                "(interLink sends only volume-mounted objects; let the virtual kubelet "
                "resolve env, or mark it optional)",
            )


def translate_env(spec: JsonObject, *, names: CopiedNames, pod: PodRef) -> None:
    """Rewrite env and envFrom of every container of ``spec`` in place (before the
    translation drops ``serviceAccountName``: its fieldRef is resolved from it)."""
    local = {field: str(getattr(pod, attribute)) for field, attribute in _LOCAL_FIELDS.items()}
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    if isinstance(account, str):
        local[_SERVICE_ACCOUNT_FIELD] = account
    for base, container in containers_of(spec):
        for var_path, var in shape.objects_at(container, "env", base):
            source = shape.object_at(var, "valueFrom", var_path)
            if source is None:
                continue
            source_path = shape.child(var_path, "valueFrom")
            field_ref = shape.object_at(source, "fieldRef", source_path)
            if field_ref is not None:
                field_path = shape.string_at(field_ref, "fieldPath", f"{source_path}.fieldRef")
                if field_path in local:
                    var.pop("valueFrom")
                    var["value"] = local[field_path]
                    continue
            _rename_references(source, names=names, where=source_path, pod=pod)
        for from_path, source in shape.objects_at(container, "envFrom", base):
            _rename_references(source, names=names, where=from_path, pod=pod)
