"""Pod identities and parsed plugin requests, as the layers below the API read them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sidecar.core.shape import JsonObject


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
