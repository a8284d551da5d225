"""Parsing interLink's request bodies into small typed values, with errors that name the field.

The wire contract is interLink's Go code (see shared/reference/interlink-plugin-api.md):
JSON names are exact (``PodUID``, ``Opts.Bytes``), Go serialises nil slices as ``null``,
and GET requests carry a JSON body. Pods stay raw dicts: translation works on the JSON the
virtual kubelet sent so no field is lost to a narrow model.

Everything a request names is checked here, before anything is journalled or sent: the
body's size is bounded by the routes, its nesting here (``MAX_DEPTH``), the type of each
field read by ``sidecar.core.shape``, identifiers against Kubernetes' own rules by
``sidecar.api.rules``, log options against the ranges the remote API server accepts.

Answers are encoded by ``encode_json`` (orjson: compact UTF-8, an order of magnitude
faster than ``json.dumps``; Go's decoder reads either).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from sidecar.api import rules
from sidecar.core.pods import CreateRequest, LogOptions, PodRef

# Re-exported for the API layer (``wire.WireError``); the layers below import them
# from sidecar.core.
from sidecar.core.shape import JsonObject as JsonObject
from sidecar.core.shape import WireError as WireError
from sidecar.core.shape import (
    as_object,
    bool_at,
    int_at,
    kind_of,
    objects_at,
    preview,
    string_at,
)

# Go's zero time.Time, which interLink sends for "SinceTime not set".
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

MAX_DEPTH = 64
"""Deepest JSON nesting accepted. A RetrievedPodData is about 12 levels deep (Kubernetes
objects have no recursive fields); json.loads and every later copy recurse once per
level, so a body nested 1,000 deep must be refused before it reaches them."""

# Log option bounds. The remote API server takes int64 values; SinceSeconds becomes a
# Go time.Duration (int64 nanoseconds) in the kubelet, which overflows beyond this.
MAX_INT64 = 2**63 - 1
MAX_SINCE_SECONDS = MAX_INT64 // 10**9


@dataclass(frozen=True, slots=True)
class LogRequest:
    ref: PodRef
    container: str
    options: LogOptions


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: Go's decoder refuses it as out of range
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` objects/lists; iterative, no recursion.
    Level by level, with no bookkeeping per value: a ``/status`` of 1,000 pods walks
    every value of the body (a stack of (value, depth) pairs was 2.5 times slower)."""
    level = [value]
    for _ in range(limit):
        below: list[Any] = []
        add = below.append
        for current in level:
            for child in current.values() if isinstance(current, dict) else current:
                if isinstance(child, dict | list):
                    add(child)
        if not below:
            return False
        level = below
    return True


def decode_json(raw: bytes) -> Any:
    """The body as JSON: 400 naming the problem for an empty body, invalid JSON (also
    ``NaN``/``Infinity``, which are not JSON), or nesting deeper than ``MAX_DEPTH``."""
    if not raw.strip():
        raise WireError(400, "request body is empty: expected JSON")
    too_deep = WireError(400, f"request body nests deeper than {MAX_DEPTH} levels: refused")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        # The C decoder recurses once per level and stops at the interpreter's limit.
        raise too_deep from None
    except ValueError as exc:
        # JSONDecodeError, UnicodeDecodeError, and int() refusing over 4300 digits.
        raise WireError(400, f"request body is not valid JSON: {_one_line(exc)}") from None
    if isinstance(value, dict | list) and _too_deep(value, MAX_DEPTH):
        raise too_deep
    return value


def encode_json(value: Any) -> bytes:
    """``value`` as JSON bytes (UTF-8). What orjson refuses and ``json`` takes (a lone
    surrogate a JSON body can smuggle into a name, an integer beyond 64 bits) is
    encoded by ``json``, escaped: the answer is the same JSON either way."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value).encode()


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


def pod_ref(pod: Any, where: str = "pod") -> PodRef:
    """The uid, name and namespace of a v1.Pod body; each is required and must follow
    Kubernetes' rules (checked before anything is journalled or sent)."""
    meta = as_object(as_object(pod, where).get("metadata"), f"{where}.metadata")
    path = f"{where}.metadata"
    return PodRef(
        uid=rules.check_uid(string_at(meta, "uid", path, required=True), f"{path}.uid"),
        name=rules.check_pod_name(string_at(meta, "name", path, required=True), f"{path}.name"),
        namespace=rules.check_namespace(
            string_at(meta, "namespace", path, required=True), f"{path}.namespace"
        ),
    )


def parse_create(body: Any) -> CreateRequest:
    """``RetrievedPodData``: one object (current interLink) or a list of one (before 0.5)."""
    if isinstance(body, list):
        if len(body) != 1:
            raise WireError(422, f"body: expected one RetrievedPodData, got a list of {len(body)}")
        body = body[0]
    data = as_object(body, "body")
    pod = as_object(data.get("pod"), "pod")
    ref = pod_ref(pod)
    spec = as_object(pod.get("spec"), "pod.spec")
    containers = list(objects_at(spec, "containers", "pod.spec"))
    if not containers:
        raise WireError(422, "pod.spec.containers: at least one container is required")
    for path, container in containers:
        string_at(container, "name", path, required=True)
    return CreateRequest(
        pod=pod,
        ref=ref,
        containers=[entry for _, entry in objects_at(data, "container", "")],
    )


def parse_pod_list(body: Any) -> list[JsonObject]:
    """``/status`` body: a list of v1.Pod (``[]`` or ``null`` is the ping)."""
    return [pod for pod, _ in parse_status_pods(body)]


def parse_status_pods(body: Any) -> list[tuple[JsonObject, PodRef]]:
    """``/status`` body: a list of v1.Pod (``[]`` or ``null`` is the ping), each with
    its identity (every pod is checked before anything is answered)."""
    if body is None:
        return []
    if not isinstance(body, list):
        raise WireError(422, f"body: expected a JSON list of pods, got {kind_of(body)}")
    pods = [as_object(p, f"[{i}]") for i, p in enumerate(body)]
    return [(pod, pod_ref(pod, f"[{index}]")) for index, pod in enumerate(pods)]


def _since_time(opts: JsonObject) -> datetime | None:
    raw = opts.get("SinceTime")
    if raw in (None, "", _GO_ZERO_TIME):
        return None
    if not isinstance(raw, str):
        raise WireError(422, f"Opts.SinceTime: expected an RFC 3339 string, got {kind_of(raw)}")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise WireError(422, f"Opts.SinceTime: not an RFC 3339 time: {preview(raw)}") from None
    if parsed.year <= 1:
        return None  # Go's zero time in another spelling
    try:
        # In UTC now: a time at the edge of the calendar with an offset leaves it.
        moment = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise WireError(
            422, f"Opts.SinceTime: {preview(raw)} is outside the years 1 to 9999 in UTC"
        ) from None
    # No container log line is older than the Unix epoch: an earlier time selects the
    # same lines, and years before 1000 are not four digits in every formatter.
    return max(moment, _EPOCH)


def parse_log_request(body: Any) -> LogRequest:
    """``LogStruct``: ``Namespace``, ``PodUID``, ``PodName``, ``ContainerName``, ``Opts``."""
    data = as_object(body, "body")
    ref = PodRef(
        uid=rules.check_uid(string_at(data, "PodUID", "body", required=True), "body.PodUID"),
        name=rules.check_pod_name(
            string_at(data, "PodName", "body", required=True), "body.PodName"
        ),
        namespace=rules.check_namespace(
            string_at(data, "Namespace", "body", required=True), "body.Namespace"
        ),
    )
    container = string_at(data, "ContainerName", "body")
    if container:
        rules.check_container_name(container, "body.ContainerName")
    opts = data.get("Opts")
    opts = {} if opts is None else as_object(opts, "Opts")
    options = LogOptions(
        tail=int_at(opts, "Tail", "Opts"),
        limit_bytes=int_at(opts, "Bytes", "Opts"),
        timestamps=bool_at(opts, "Timestamps", "Opts"),
        follow=bool_at(opts, "Follow", "Opts"),
        previous=bool_at(opts, "Previous", "Opts"),
        since_seconds=int_at(opts, "SinceSeconds", "Opts", maximum=MAX_SINCE_SECONDS),
        since_time=_since_time(opts),
    )
    return LogRequest(ref=ref, container=container, options=options)
