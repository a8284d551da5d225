"""Parsing interLink's request bodies into small typed values, with errors that name the field.

The wire contract is interLink's Go code (see shared/reference/interlink-plugin-api.md):
JSON names are exact (``PodUID``, ``Opts.Bytes``), Go serialises nil slices as ``null``,
and GET requests carry a JSON body. Pods stay raw dicts: translation works on the JSON the
virtual kubelet sent so no field is lost to a narrow model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]

# Go's zero time.Time, which interLink sends for "SinceTime not set".
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


class WireError(Exception):
    """A request body interLink (or a person with curl) got wrong. Becomes a 4xx answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class PodRef:
    """The identity of a local pod."""

    uid: str
    name: str
    namespace: str


@dataclass(frozen=True, slots=True)
class CreateRequest:
    pod: JsonObject
    ref: PodRef
    containers: list[JsonObject]
    """``RetrievedContainer`` entries: per container, the ConfigMaps/Secrets it mounts."""


@dataclass(frozen=True, slots=True)
class LogOptions:
    tail: int = 0
    limit_bytes: int = 0
    timestamps: bool = False
    follow: bool = False
    previous: bool = False
    since_seconds: int = 0
    since_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogRequest:
    ref: PodRef
    container: str
    options: LogOptions


def decode_json(raw: bytes) -> Any:
    if not raw.strip():
        raise WireError(400, "request body is empty: expected JSON")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(400, f"request body is not valid JSON: {exc}") from None


def _object(value: Any, where: str) -> JsonObject:
    if not isinstance(value, dict):
        raise WireError(422, f"{where}: expected a JSON object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _string(obj: JsonObject, key: str, where: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise WireError(422, f"{where}.{key}: required")
        return ""
    if not isinstance(value, str):
        raise WireError(422, f"{where}.{key}: expected a string, got {_kind(value)}")
    return value


def pod_ref(pod: Any, where: str = "pod") -> PodRef:
    """The uid, name and namespace of a v1.Pod body; each is required."""
    pod = _object(pod, where)
    meta = _object(pod.get("metadata"), f"{where}.metadata")
    return PodRef(
        uid=_string(meta, "uid", f"{where}.metadata"),
        name=_string(meta, "name", f"{where}.metadata"),
        namespace=_string(meta, "namespace", f"{where}.metadata"),
    )


def parse_create(body: Any) -> CreateRequest:
    """``RetrievedPodData``: one object (current interLink) or a list of one (before 0.5)."""
    if isinstance(body, list):
        if len(body) != 1:
            raise WireError(422, f"body: expected one RetrievedPodData, got a list of {len(body)}")
        body = body[0]
    data = _object(body, "body")
    pod = _object(data.get("pod"), "pod")
    ref = pod_ref(pod)
    spec = _object(pod.get("spec"), "pod.spec")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise WireError(422, "pod.spec.containers: at least one container is required")
    for index, container in enumerate(containers):
        _string(
            _object(container, f"pod.spec.containers[{index}]"),
            "name",
            f"pod.spec.containers[{index}]",
        )
    retrieved = data.get("container") or []
    if not isinstance(retrieved, list):
        raise WireError(422, f"container: expected a list, got {_kind(retrieved)}")
    return CreateRequest(
        pod=pod,
        ref=ref,
        containers=[_object(c, f"container[{i}]") for i, c in enumerate(retrieved)],
    )


def parse_pod_list(body: Any) -> list[JsonObject]:
    """``/status`` body: a list of v1.Pod (``[]`` or ``null`` is the ping)."""
    if body is None:
        return []
    if not isinstance(body, list):
        raise WireError(422, f"body: expected a JSON list of pods, got {_kind(body)}")
    pods = [_object(p, f"[{i}]") for i, p in enumerate(body)]
    for index, pod in enumerate(pods):
        pod_ref(pod, f"[{index}]")
    return pods


def _int(opts: JsonObject, key: str) -> int:
    value = opts.get(key) or 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(422, f"Opts.{key}: expected a non-negative integer, got {value!r}")
    return value


def _bool(opts: JsonObject, key: str) -> bool:
    value = opts.get(key) or False
    if not isinstance(value, bool):
        raise WireError(422, f"Opts.{key}: expected true or false, got {value!r}")
    return value


def _since_time(opts: JsonObject) -> datetime | None:
    raw = opts.get("SinceTime")
    if raw in (None, "", _GO_ZERO_TIME):
        return None
    if not isinstance(raw, str):
        raise WireError(422, f"Opts.SinceTime: expected an RFC 3339 string, got {raw!r}")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise WireError(422, f"Opts.SinceTime: not an RFC 3339 time: {raw!r}") from None
    if parsed.year <= 1:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_log_request(body: Any) -> LogRequest:
    """``LogStruct``: ``Namespace``, ``PodUID``, ``PodName``, ``ContainerName``, ``Opts``."""
    data = _object(body, "body")
    ref = PodRef(
        uid=_string(data, "PodUID", "body"),
        name=_string(data, "PodName", "body"),
        namespace=_string(data, "Namespace", "body"),
    )
    opts = _object(data.get("Opts") or {}, "Opts")
    options = LogOptions(
        tail=_int(opts, "Tail"),
        limit_bytes=_int(opts, "Bytes"),
        timestamps=_bool(opts, "Timestamps"),
        follow=_bool(opts, "Follow"),
        previous=_bool(opts, "Previous"),
        since_seconds=_int(opts, "SinceSeconds"),
        since_time=_since_time(opts),
    )
    return LogRequest(
        ref=ref, container=_string(data, "ContainerName", "body", required=False), options=options
    )
