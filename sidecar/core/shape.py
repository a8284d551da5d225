"""Typed reads of raw request JSON: a wrong type is a 422 naming its JSON path.

Why this exists: pods stay raw dicts (the translation is lossless: whatever is not
named is forwarded as it came), so every ``.get()`` chain over them is a place where a
string instead of a list, or a number instead of an object, would raise ``TypeError``
or ``AttributeError`` and become a 500. The remote API server would refuse such a pod
with a 422 naming the field; these readers give that answer at the edge, before
anything is journalled or sent: ``WireError(422, "<path>: expected <type>, got <type>")``.

Conventions, those of Go's encoding/json that interLink and Kubernetes use: a missing
key and ``null`` are the zero value (no object, an empty list, ""); anything else must
have the expected type. Paths are dotted keys and ``[n]`` indexes
(``pod.spec.containers[0].env[2].valueFrom``); a key that is not a plain identifier is
quoted (``pod.metadata.annotations["interlink.io/remote-pvc"]``). Values are never
echoed: a wrong value may be Secret data; only its type is named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

JsonObject = dict[str, Any]

# Longest echoed key or value in a message: one readable line whatever was sent.
_PREVIEW = 60
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PluginError(Exception):
    """Any answer of the plugin API but 200: its HTTP ``status`` and a one-line
    ``message`` naming the problem (the API's error middleware answers it as is)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class WireError(PluginError):
    """A request body interLink (or a person with curl) got wrong: a 4xx answer, raised
    before anything is journalled or sent."""


def kind_of(value: Any) -> str:
    """The JSON type of ``value`` with its article, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "a value"


def preview(value: Any) -> str:
    """``value`` as one short line for a message (quoted, cut, escapes kept visible)."""
    try:
        text = json.dumps(value) if isinstance(value, str) else repr(value)
    except ValueError:  # an integer over Python's 4300-digit conversion limit
        return "a number too long to show"
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."


def child(path: str, key: str) -> str:
    """The path of ``key`` inside the object at ``path``."""
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{preview(key)}]"


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def wrong_type(path: str, expected: str, value: Any) -> WireError:
    return WireError(422, f"{path}: expected {expected}, got {kind_of(value)}")


def as_object(value: Any, path: str) -> JsonObject:
    """``value`` itself, which must be an object (``null`` too is refused)."""
    if not isinstance(value, dict):
        raise wrong_type(path, "an object", value)
    return value


def object_at(parent: JsonObject, key: str, path: str) -> JsonObject | None:
    """The object at ``parent[key]``; None when missing or ``null``."""
    value = parent.get(key)
    if value is None:
        return None
    return as_object(value, child(path, key))


def list_at(parent: JsonObject, key: str, path: str) -> list[Any]:
    """The list at ``parent[key]`` (the list itself); [] when missing or ``null``."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise wrong_type(child(path, key), "a list", value)
    return value


def objects_at(parent: JsonObject, key: str, path: str) -> Iterator[tuple[str, JsonObject]]:
    """(path, element) for each element of the list at ``parent[key]``; every element
    must be an object. The elements are the originals: in-place edits reach the pod."""
    where = child(path, key)
    for index, value in enumerate(list_at(parent, key, path)):
        yield item(where, index), as_object(value, item(where, index))


def string_at(parent: JsonObject, key: str, path: str, *, required: bool = False) -> str:
    """The string at ``parent[key]``; "" when missing or ``null`` (an error if
    ``required``, as is "")."""
    value = parent.get(key)
    if value is None or value == "":
        if required:
            raise WireError(422, f"{child(path, key)}: required")
        return ""
    if not isinstance(value, str):
        raise wrong_type(child(path, key), "a string", value)
    return value


def strings_at(parent: JsonObject, key: str, path: str) -> list[str]:
    """The list of strings at ``parent[key]``; [] when missing or ``null``."""
    where = child(path, key)
    values = list_at(parent, key, path)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise wrong_type(item(where, index), "a string", value)
    return values


def string_map_at(parent: JsonObject, key: str, path: str) -> dict[str, str]:
    """The ``map[string]string`` at ``parent[key]`` (labels, annotations, nodeSelector,
    ConfigMap data); {} when missing or ``null``. Returns the original object."""
    value = object_at(parent, key, path)
    if value is None:
        return {}
    where = child(path, key)
    for name, text in value.items():
        if not isinstance(text, str):
            raise wrong_type(child(where, name), "a string", text)
    return value


def bool_at(parent: JsonObject, key: str, path: str) -> bool:
    """The boolean at ``parent[key]``; False when missing or ``null``."""
    value = parent.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise wrong_type(child(path, key), "true or false", value)
    return value


def int_at(
    parent: JsonObject, key: str, path: str, *, minimum: int = 0, maximum: int = 2**63 - 1
) -> int:
    """The integer at ``parent[key]`` within [minimum, maximum]; 0 when missing or
    ``null``. Go's int64 is the widest integer on the wire, and Go refuses ``5.0``
    for an integer field, so a float is a wrong type."""
    value = parent.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(child(path, key), "an integer", value)
    if not minimum <= value <= maximum:
        raise WireError(
            422,
            f"{child(path, key)}: {preview(value)} is out of range ({minimum} to {maximum})",
        )
    return value
