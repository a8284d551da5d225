"""Field-by-field comparison of a local pod and its remote translation.

Lists of named objects (containers, volumes, env, mounts) are compared by name, so a
dropped volume is one difference (``spec.volumes{name}``), not a shift of every later
index. Other lists are compared by index. Paths use the notation of
``sidecar.offload.rewrites``.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


def _named(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in value)
    )


def _empty_like(value: Any) -> Any:
    """A missing map or named list compares as an empty one, so the difference is
    reported per key or element (``metadata.annotations.x``), not as a whole."""
    if isinstance(value, dict):
        return {}
    return [] if _named(value) else _MISSING


def _walk(left: Any, right: Any, path: str, out: set[str]) -> None:
    if left is _MISSING and right is not _MISSING:
        left = _empty_like(right)
    elif right is _MISSING and left is not _MISSING:
        right = _empty_like(left)
    if left is _MISSING or right is _MISSING:
        out.add(path)
    elif isinstance(left, dict) and isinstance(right, dict):
        for key in left.keys() | right.keys():
            _walk(
                left.get(key, _MISSING),
                right.get(key, _MISSING),
                f"{path}.{key}" if path else str(key),
                out,
            )
    elif (_named(left) or left == []) and (_named(right) or right == []):
        lefts = {i["name"]: i for i in left}
        rights = {i["name"]: i for i in right}
        for name in lefts.keys() | rights.keys():
            if name in lefts and name in rights:
                _walk(lefts[name], rights[name], f"{path}{{{name}}}", out)
            else:
                out.add(f"{path}{{{name}}}")  # a whole element added or dropped
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            _walk(a, b, f"{path}[{index}]", out)
    elif left != right:
        out.add(path)


def differences(local: dict[str, Any], remote: dict[str, Any]) -> set[str]:
    """Paths whose values differ, or that exist on one side only."""
    out: set[str] = set()
    _walk(local, remote, "", out)
    return out


def undocumented(local: dict[str, Any], remote: dict[str, Any]) -> list[str]:
    """Differences that no entry of ``sidecar.offload.rewrites.REWRITES`` explains."""
    from sidecar.offload.rewrites import documented

    return sorted(p for p in differences(local, remote) if documented(p) is None)
