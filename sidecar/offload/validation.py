"""Checking translated objects against the Kubernetes schema before any write.

kubernetes-validate ships the OpenAPI schemas of each Kubernetes minor version; strict
mode also refuses unknown fields. The version is ``k8s.validation_version`` or, by
default, the remote API server's own (read once from ``/version``); a server newer than
the newest schema the package has falls back to that newest one. A rejection becomes a
422 whose message names the object and the field.
"""

from __future__ import annotations

import asyncio
import logging
import re
from functools import lru_cache
from pathlib import Path

import kubernetes_validate

from sidecar.api.wire import JsonObject, WireError

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _available() -> tuple[tuple[int, int], ...]:
    """Minor versions whose schemas the installed kubernetes-validate carries."""
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    found = set()
    for entry in schemas.iterdir():
        match = re.match(r"v1\.(\d+)\.(\d+)-local", entry.name)
        if match:
            found.add((int(match.group(1)), int(match.group(2))))
    return tuple(sorted(found))


def schema_version(server_version: str) -> str:
    """The schema to use for a server reporting ``server_version`` (``v1.35.4``, ``1.35``)."""
    match = re.match(r"v?1\.(\d+)", server_version)
    available = _available()
    if match:
        minor = int(match.group(1))
        same_minor = [v for v in available if v[0] == minor]
        if same_minor:
            return f"1.{minor}.{same_minor[-1][1]}"
    newest = available[-1]
    logger.warning(
        "no schema for Kubernetes %r in kubernetes-validate; validating with 1.%d.%d",
        server_version,
        *newest,
    )
    return f"1.{newest[0]}.{newest[1]}"


def _field_path(path: list[object]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def validate_objects(objects: list[JsonObject], version: str) -> None:
    """Raise WireError(422) naming the object and field of the first schema violation."""
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            kind = obj.get("kind", "object")
            name = (obj.get("metadata") or {}).get("name", "")
            where = kind.lower() if kind == "Pod" else f"{kind} {name}"
            raise WireError(
                422,
                f"{where}{_field_path(list(exc.path))}: {exc.message} "
                f"(Kubernetes {version} schema)",
            ) from None


async def validate_in_thread(objects: list[JsonObject], version: str) -> None:
    """``validate_objects`` off the event loop (a few ms per object of CPU)."""
    await asyncio.to_thread(validate_objects, objects, version)
