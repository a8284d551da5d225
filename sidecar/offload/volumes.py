"""Volumes: which local data is copied remotely, and how the pod's volumes are rewritten.

What interLink sends (interlink-plugin-api.md §10.3): per container, the full ConfigMaps
and Secrets it mounts (an object mounted by two containers arrives twice) and, per
projected volume (including the automatic ``kube-api-access-*`` and converted
``downwardAPI`` volumes), a synthetic ConfigMap named after the volume whose ``data`` maps
each final file path to its content. PVCs are not sent by stock interLink; entries in
``persistentVolumeClaims`` (the SDK's field) are honoured when present.

Rules:

* configMap / secret: copied once per pod as ``<name>-<pod uid>``; ``items``,
  ``defaultMode`` and ``optional`` stay as they are;
* projected: its data becomes a Secret (service-account token paths: tokens are
  credentials) and/or a ConfigMap (everything else), and the volume is rewritten to
  project those two objects to the same paths with the same modes;
* downwardAPI with data sent: like projected (the local pod's values are the truth);
  without data: kept, so the remote kubelet resolves it against the remote pod;
* emptyDir: kept (medium and sizeLimit included);
* persistentVolumeClaim: kept when the claim is listed in the pod annotation
  ``interlink.io/remote-pvc``; created remotely when its object was sent;
* anything else, or data interLink did not send: dropped with its mounts, with a
  warning naming the pod and the volume.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sidecar.core import naming, shape
from sidecar.core.pods import PodRef
from sidecar.core.shape import JsonObject, WireError
from sidecar.offload.ownership import CREATED_BY_ANNOTATION, CREATED_BY_VALUE, owned_metadata
from sidecar.offload.plan import OffloadPlan

REMOTE_PVC_ANNOTATION = "interlink.io/remote-pvc"
PVC_RETENTION_ANNOTATION = "interlink.io/pvc-retention-policy"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

_REMOTE_SECRET_TYPE = {"kubernetes.io/service-account-token": "Opaque"}
_KEY_UNSAFE = re.compile(r"[^-._a-zA-Z0-9]")


@dataclass(slots=True)
class CopiedNames:
    """Local object name -> remote name, for rewriting env references."""

    config_maps: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)


def containers_of(spec: JsonObject) -> Iterator[tuple[str, JsonObject]]:
    """(path, container) for every container of every list in ``spec``; each must be an
    object (422 naming it otherwise)."""
    for list_name in CONTAINER_LISTS:
        yield from shape.objects_at(spec, list_name, "pod.spec")


def _mounts(container: JsonObject, path: str, key: str) -> Iterator[tuple[str, JsonObject]]:
    """(name, mount) of the container's ``volumeMounts`` or ``volumeDevices``."""
    for mount_path, mount in shape.objects_at(container, key, path):
        yield shape.string_at(mount, "name", mount_path), mount


def _text_map(obj: JsonObject, key: str, path: str) -> dict[str, Any]:
    """A ``map[string]string`` of data: values are strings, or ``null`` (Go reads "")."""
    value = shape.object_at(obj, key, path) or {}
    for name, text in value.items():
        if text is not None and not isinstance(text, str):
            raise shape.wrong_type(shape.child(shape.child(path, key), name), "a string", text)
    return value


def _sent(retrieved: list[JsonObject], key: str) -> dict[str, JsonObject]:
    """Objects interLink sent under ``key`` for any container, by name (deduplicated).

    Every field read later (names, annotations, type, spec, data) is type-checked here,
    where the JSON path (``container[i].<key>[j]``) is known; the data maps are checked
    so that a wrong value is named by its path, never echoed (it may be Secret data).
    """
    found: dict[str, JsonObject] = {}
    for index, entry in enumerate(retrieved):
        for path, obj in shape.objects_at(entry, key, f"container[{index}]"):
            meta = shape.object_at(obj, "metadata", path) or {}
            name = shape.string_at(meta, "name", f"{path}.metadata")
            shape.string_map_at(meta, "annotations", f"{path}.metadata")
            shape.string_at(obj, "type", path)
            shape.object_at(obj, "spec", path)
            for data_key in ("data", "binaryData", "stringData"):
                _text_map(obj, data_key, path)
            if name:
                found.setdefault(name, obj)
    return found


def _mounted_names(spec: JsonObject) -> set[str]:
    return {
        name
        for path, container in containers_of(spec)
        for key in ("volumeMounts", "volumeDevices")
        for name, _ in _mounts(container, path, key)
    }


def remote_pvc_claims(annotations: JsonObject) -> set[str]:
    """Claim names listed in ``interlink.io/remote-pvc`` (comma list, spaces trimmed)."""
    raw = str(annotations.get(REMOTE_PVC_ANNOTATION) or "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _safe_keys(paths: list[str]) -> dict[str, str]:
    """A ConfigMap/Secret key (``[-._a-zA-Z0-9]+``) for each file path, unique."""
    keys: dict[str, str] = {}
    used: set[str] = set()
    for path in paths:
        key = _KEY_UNSAFE.sub("_", path).strip(".") or "file"
        candidate, n = key, 1
        while candidate in used:
            n += 1
            candidate = f"{key}-{n}"
        used.add(candidate)
        keys[path] = candidate
    return keys


def _projections(volume_source: JsonObject, path: str) -> Iterator[tuple[str, str, JsonObject]]:
    """(kind, path, projection) for each projection of each of a projected volume's
    sources (``configMap``, ``secret``, ``downwardAPI``, ``serviceAccountToken``, ...)."""
    for source_path, source in shape.objects_at(volume_source, "sources", path):
        for kind in list(source):
            projection = shape.object_at(source, kind, source_path)
            if projection is not None:
                yield kind, shape.child(source_path, kind), projection


def _item_modes(kind: str, volume_source: JsonObject, path: str) -> dict[str, int]:
    """File mode per path from the original items (of each projected source, or of the
    downwardAPI volume itself)."""
    if kind == "downwardAPI":
        parts = [(path, volume_source)]
    else:
        parts = [(where, part) for _, where, part in _projections(volume_source, path)]
    modes: dict[str, int] = {}
    for part_path, part in parts:
        for item_path, item in shape.objects_at(part, "items", part_path):
            if "mode" in item and "path" in item:
                # A file mode: 0 to 0777 (Kubernetes' own bound).
                mode = shape.int_at(item, "mode", item_path, maximum=0o777)
                modes[shape.string_at(item, "path", item_path)] = mode
    return modes


def _token_paths(volume_source: JsonObject, path: str) -> set[str]:
    return {
        shape.string_at(projection, "path", where)
        for kind, where, projection in _projections(volume_source, path)
        if kind == "serviceAccountToken"
    }


class _VolumeTranslator:
    def __init__(
        self,
        spec: JsonObject,
        retrieved: list[JsonObject],
        annotations: JsonObject,
        plan: OffloadPlan,
    ) -> None:
        self.spec = spec
        self.plan = plan
        self.ref: PodRef = plan.ref
        self.namespace = plan.namespace
        self.config_maps = _sent(retrieved, "configMaps")
        self.secrets = _sent(retrieved, "secrets")
        self.projected = _sent(retrieved, "projectedvolumemaps")
        self.pvcs = _sent(retrieved, "persistentVolumeClaims")
        self.remote_claims = remote_pvc_claims(annotations)
        self.mounted = _mounted_names(spec)
        self.names = CopiedNames()
        self._created_pvcs: set[str] = set()

    # --- copies --------------------------------------------------------------------

    def _copy(self, kind: str, name: str) -> str:
        """Copy the sent ConfigMap or Secret ``name`` once; returns the copy's name."""
        copied = self.names.config_maps if kind == "ConfigMap" else self.names.secrets
        if name not in copied:
            local = (self.config_maps if kind == "ConfigMap" else self.secrets)[name]
            remote_name = naming.scoped_name(name, self.ref.uid)
            obj: JsonObject = {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": owned_metadata(
                    name=remote_name, namespace=self.namespace, ref=self.ref, source=local
                ),
            }
            for key in ("data", "binaryData", "stringData", "immutable"):
                if local.get(key) is not None:
                    obj[key] = copy.deepcopy(local[key])
            if kind == "Secret":
                # A service-account-token Secret names a ServiceAccount that does not
                # exist remotely; the token controller would delete it. Its bytes matter.
                local_type = str(local.get("type") or "Opaque")  # a string (see _sent)
                obj["type"] = _REMOTE_SECRET_TYPE.get(local_type, local_type)
                self.plan.secrets.append(obj)
            else:
                self.plan.config_maps.append(obj)
            copied[name] = remote_name
        return copied[name]

    def _data_object(
        self, kind: str, name: str, data: dict[str, str], keys: dict[str, str], source: JsonObject
    ) -> None:
        obj: JsonObject = {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": owned_metadata(
                name=name, namespace=self.namespace, ref=self.ref, source=source
            ),
        }
        if kind == "Secret":
            obj["type"] = "Opaque"
            obj["stringData"] = {keys[path]: content for path, content in data.items()}
            self.plan.secrets.append(obj)
        else:
            obj["data"] = {keys[path]: content for path, content in data.items()}
            self.plan.config_maps.append(obj)

    # --- volume kinds -----------------------------------------------------------------

    def projected_from_data(self, path: str, volume: JsonObject, kind: str) -> JsonObject:
        """A projected volume over copies of the data interLink resolved for ``volume``."""
        source = volume[kind]
        name = str(volume["name"])
        sent = self.projected[name]
        data = {str(k): "" if v is None else str(v) for k, v in (sent.get("data") or {}).items()}
        where = shape.child(path, kind)
        tokens = _token_paths(source, where) if kind == "projected" else set()
        modes = _item_modes(kind, source, where)
        keys = _safe_keys(list(data))
        base = naming.scoped_name(f"projected-{name}", self.ref.uid)
        sources: list[JsonObject] = []
        for object_kind, wanted in (("Secret", True), ("ConfigMap", False)):
            part = {p: c for p, c in data.items() if (p in tokens) == wanted}
            if not part:
                continue
            self._data_object(object_kind, base, part, keys, sent)
            items = []
            for path in part:
                item: JsonObject = {"key": keys[path], "path": path}
                if path in modes:
                    item["mode"] = modes[path]
                items.append(item)
            field_name = "secret" if object_kind == "Secret" else "configMap"
            sources.append({field_name: {"name": base, "items": items}})
        projected: JsonObject = {"sources": sources}
        if "defaultMode" in source:
            projected["defaultMode"] = source["defaultMode"]
        return {"name": name, "projected": projected}

    def pvc(self, path: str, volume: JsonObject, source: JsonObject) -> JsonObject | None:
        claim = shape.string_at(source, "claimName", shape.child(path, "persistentVolumeClaim"))
        if claim not in self.remote_claims:
            self.warn(path, volume, f"claim {claim!r} is not listed in {REMOTE_PVC_ANNOTATION}")
            return None
        if claim in self.pvcs and claim not in self._created_pvcs:
            self._created_pvcs.add(claim)
            self.plan.pvcs.append(self._remote_pvc(self.pvcs[claim]))
        return volume

    def _remote_pvc(self, local: JsonObject) -> JsonObject:
        meta = owned_metadata(
            name=local["metadata"]["name"], namespace=self.namespace, ref=self.ref, source=local
        )
        local_annotations = (local.get("metadata") or {}).get("annotations") or {}
        if PVC_RETENTION_ANNOTATION in local_annotations:
            meta["annotations"][PVC_RETENTION_ANNOTATION] = local_annotations[
                PVC_RETENTION_ANNOTATION
            ]
        meta["annotations"][CREATED_BY_ANNOTATION] = CREATED_BY_VALUE
        spec = copy.deepcopy(local.get("spec") or {})
        # Bound to local objects that do not exist remotely: the remote PVC would wait
        # for ever. The remote default storage class provisions it instead.
        for key in ("volumeName", "storageClassName", "dataSource", "dataSourceRef"):
            spec.pop(key, None)
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}

    def warn(self, path: str, volume: JsonObject, why: str) -> None:
        self.plan.warnings.append(
            f"pod {self.ref.namespace}/{self.ref.name}: volume {volume.get('name')!r} "
            f"({path.removeprefix('pod.')}) dropped with its mounts: {why}"
        )

    def missing(self, field_path: str, kind: str, name: str) -> WireError:
        return WireError(
            422,
            f"{field_path}: {kind} {shape.preview(name)} is mounted but interLink did not send it",
        )

    def _object_volume(
        self,
        path: str,
        volume: JsonObject,
        source: JsonObject,
        names: tuple[str, str, str],
    ) -> JsonObject | None:
        """A configMap or secret volume: point it at the copy, or decide it cannot work."""
        source_key, name_key, kind = names
        where = shape.child(path, source_key)
        ref_name = shape.string_at(source, name_key, where)
        sent = self.config_maps if kind == "ConfigMap" else self.secrets
        if ref_name in sent:
            source[name_key] = self._copy(kind, ref_name)
            return volume
        if shape.bool_at(source, "optional", where):
            source[name_key] = naming.scoped_name(ref_name, self.ref.uid)
            return volume
        if volume.get("name") not in self.mounted:
            self.warn(path, volume, f"not mounted, and its {kind} was not sent")
            return None
        raise self.missing(shape.child(where, name_key), kind, ref_name)

    # --- driver -------------------------------------------------------------------------

    def translate(self, path: str, volume: JsonObject) -> JsonObject | None:
        name = shape.string_at(volume, "name", path)
        if "emptyDir" in volume:
            return volume
        for names in (("configMap", "name", "ConfigMap"), ("secret", "secretName", "Secret")):
            source = shape.object_at(volume, names[0], path)
            if source is not None:
                return self._object_volume(path, volume, source, names)
        if shape.object_at(volume, "projected", path) is not None:
            if name in self.projected:
                return self.projected_from_data(path, volume, "projected")
            self.warn(path, volume, "interLink sent no data for this projected volume")
            return None
        if shape.object_at(volume, "downwardAPI", path) is not None:
            if name in self.projected:
                return self.projected_from_data(path, volume, "downwardAPI")
            self.plan.warnings.append(
                f"pod {self.ref.namespace}/{self.ref.name}: downwardAPI volume {name!r} "
                "is resolved by the remote kubelet (remote pod name, namespace and uid)"
            )
            return volume
        claim = shape.object_at(volume, "persistentVolumeClaim", path)
        if claim is not None:
            return self.pvc(path, volume, claim)
        kind = next((k for k in volume if k != "name"), "unknown")
        self.warn(path, volume, f"volume type {shape.preview(kind)} is not supported remotely")
        return None


def translate_volumes(
    spec: JsonObject, *, retrieved: list[JsonObject], annotations: JsonObject, plan: OffloadPlan
) -> CopiedNames:
    """Rewrite ``spec`` volumes in place, adding the copies to ``plan``."""
    translator = _VolumeTranslator(spec, retrieved, annotations, plan)
    kept: list[JsonObject] = []
    for path, volume in shape.objects_at(spec, "volumes", "pod.spec"):
        result = translator.translate(path, volume)
        if result is not None:
            kept.append(result)
    kept_names = {v.get("name") for v in kept}  # strings: checked by translate
    if kept:
        spec["volumes"] = kept
    else:
        spec.pop("volumes", None)
    for path, container in containers_of(spec):
        for key in ("volumeMounts", "volumeDevices"):
            if key not in container:
                continue
            mounts = [m for name, m in _mounts(container, path, key) if name in kept_names]
            if mounts:
                container[key] = mounts
            else:
                container.pop(key)
    return translator.names
