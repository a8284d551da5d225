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

from sidecar.api.wire import JsonObject, PodRef, WireError
from sidecar.offload import naming
from sidecar.offload.volumes import CONTAINER_LISTS, CopiedNames

_LOCAL_FIELDS = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}


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
        ref = source.get(field)
        if not isinstance(ref, dict):
            continue
        copied = names.config_maps if kind == "ConfigMap" else names.secrets
        name = ref.get("name", "")
        if name in copied:
            ref["name"] = copied[name]
        elif ref.get("optional"):
            ref["name"] = naming.scoped_name(name, pod.uid)
        else:
            raise WireError(
                422,
                f"{where}.{field}: {kind} {name!r} cannot be resolved remotely (interLink "
                "sends only volume-mounted objects; let the virtual kubelet resolve env, "
                "or mark it optional)",
            )


def translate_env(spec: JsonObject, *, names: CopiedNames, pod: PodRef) -> None:
    """Rewrite env and envFrom of every container of ``spec`` in place."""
    for list_name in CONTAINER_LISTS:
        for c_index, container in enumerate(spec.get(list_name) or []):
            base = f"pod.spec.{list_name}[{c_index}]"
            for e_index, var in enumerate(container.get("env") or []):
                source = var.get("valueFrom")
                if not isinstance(source, dict):
                    continue
                field_ref = source.get("fieldRef")
                if isinstance(field_ref, dict) and field_ref.get("fieldPath") in _LOCAL_FIELDS:
                    var.pop("valueFrom")
                    var["value"] = getattr(pod, _LOCAL_FIELDS[field_ref["fieldPath"]])
                    continue
                _rename_references(
                    source, names=names, where=f"{base}.env[{e_index}].valueFrom", pod=pod
                )
            for f_index, source in enumerate(container.get("envFrom") or []):
                _rename_references(source, names=names, where=f"{base}.envFrom[{f_index}]", pod=pod)
