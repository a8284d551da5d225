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


def _rename(ref: JsonObject, *, copied: dict[str, str], kind: str, where: str, pod: PodRef) -> None:
    name = ref.get("name", "")
    if name in copied:
        ref["name"] = copied[name]
    elif ref.get("optional"):
        ref["name"] = naming.scoped_name(name, pod.uid)
    else:
        raise WireError(
            422,
            f"{where}: {kind} {name!r} cannot be resolved remotely (interLink sends only "
            "volume-mounted objects; let the virtual kubelet resolve env, or mark it optional)",
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
                where = f"{base}.env[{e_index}].valueFrom"
                if isinstance(source.get("configMapKeyRef"), dict):
                    _rename(
                        source["configMapKeyRef"],
                        copied=names.config_maps,
                        kind="ConfigMap",
                        where=f"{where}.configMapKeyRef",
                        pod=pod,
                    )
                elif isinstance(source.get("secretKeyRef"), dict):
                    _rename(
                        source["secretKeyRef"],
                        copied=names.secrets,
                        kind="Secret",
                        where=f"{where}.secretKeyRef",
                        pod=pod,
                    )
                elif isinstance(source.get("fieldRef"), dict):
                    path = source["fieldRef"].get("fieldPath")
                    if path in _LOCAL_FIELDS:
                        var.pop("valueFrom")
                        var["value"] = getattr(pod, _LOCAL_FIELDS[path])
            for f_index, source in enumerate(container.get("envFrom") or []):
                where = f"{base}.envFrom[{f_index}]"
                if isinstance(source.get("configMapRef"), dict):
                    _rename(
                        source["configMapRef"],
                        copied=names.config_maps,
                        kind="ConfigMap",
                        where=f"{where}.configMapRef",
                        pod=pod,
                    )
                elif isinstance(source.get("secretRef"), dict):
                    _rename(
                        source["secretRef"],
                        copied=names.secrets,
                        kind="Secret",
                        where=f"{where}.secretRef",
                        pod=pod,
                    )
