"""Checking translated objects against the Kubernetes schema before any write.

kubernetes-validate ships the OpenAPI schemas of each Kubernetes minor version; strict
mode also refuses unknown fields. The version is ``k8s.validation_version`` or, by
default, the remote API server's own (read once from ``/version``); a server newer than
the newest schema the package has falls back to that newest one. A rejection becomes a
422 whose message names the object and the field.

The validators are built once per (schema version, kind): ``kubernetes_validate.validate``
reads and parses the 1.5 MB ``_definitions.json`` again for every object it checks.
Under a 500-wide burst that was six threads parsing JSON without pause: the event loop
got the GIL so rarely that the health check's answer went unread for 5 s (the server
was declared down and 400 creates refused), and the threads' allocator arenas kept the
memory after. Validation now runs in one worker thread of its own (a few ms per object).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

from sidecar.core.shape import JsonObject, WireError

logger = logging.getLogger(__name__)


_SCHEMAS = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


@lru_cache(maxsize=1)
def _available() -> tuple[tuple[int, int], ...]:
    """Minor versions whose schemas the installed kubernetes-validate carries."""
    found = set()
    for entry in _SCHEMAS.iterdir():
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


@lru_cache(maxsize=4)
def _definitions(version: str) -> Registry[Any]:
    """The shared definitions of one strict schema version, parsed once."""
    text = (_SCHEMAS / f"v{version}-local-strict" / "_definitions.json").read_text()
    definitions: Resource[Any] = Resource.from_contents(json.loads(text))
    return definitions @ Registry()


@lru_cache(maxsize=64)
def _validator(version: str, kind: str, api_version: str) -> Any:
    """A strict validator for ``kind`` in ``api_version`` (as kubernetes-validate names
    its files: ``apps/v1`` -> ``deployment-apps-v1.json``), built once."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _SCHEMAS / f"v{version}-local-strict" / f"{kind.lower()}-{group_version}.json"
    schema = Resource.from_contents(json.loads(path.read_text()))
    registry = schema @ _definitions(version)
    return jsonschema.validators.Draft202012Validator(schema.contents, registry=registry)


def validate_objects(objects: list[JsonObject], version: str) -> None:
    """Raise WireError(422) naming the object and field of the first schema violation."""
    for obj in objects:
        validator = _validator(version, str(obj.get("kind")), str(obj.get("apiVersion")))
        # The first error, as kubernetes_validate.validate raised it.
        error = next(iter(validator.iter_errors(obj)), None)
        if error is not None:
            kind = obj.get("kind", "object")
            name = (obj.get("metadata") or {}).get("name", "")
            where = kind.lower() if kind == "Pod" else f"{kind} {name}"
            raise WireError(
                422,
                f"{where}{_field_path(list(error.path))}: {error.message} "
                f"(Kubernetes {version} schema)",
            )


# One thread: validation is CPU work under the GIL, so more threads only take it from
# the event loop (and each would keep an allocator arena of its own).
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="validation")


async def validate_in_thread(objects: list[JsonObject], version: str) -> None:
    """``validate_objects`` off the event loop, in the validation thread."""
    await asyncio.get_running_loop().run_in_executor(_WORKER, validate_objects, objects, version)
