"""How a setting is declared: once, as a field of its section's dataclass.

``setting(parser, default, doc)`` is the field's whole declaration: the parser gives the
type (mypy checks it against the annotation), the default is the raw text a user would
write in ``config.ini`` (parsed by the same parser, so a default passes the same checks
and the dataclass default is that parsed value), and the doc is the field's meaning.
``@section(name)`` turns the fields of a dataclass into ``Key`` objects, one per
``section.key``; the loader, the README test and the chart test read those, nothing else.

Upstream keys accepted for compatibility but ignored have no field: they are declared
with ``upstream(...)`` in their section's decorator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["IGNORED_DOC", "Key", "env_name", "registry", "section", "setting", "upstream"]

T = TypeVar("T")
C = TypeVar("C")

_SPEC = "sidecar.settings"
IGNORED_DOC = "Accepted for upstream compatibility, ignored."


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides ``section.key`` (upstream naming)."""
    return f"{section}_{key}".upper()


@dataclass(frozen=True, slots=True)
class _Spec:
    parse: Callable[[str], Any]
    default: str | None
    doc: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """One accepted ``section.key``: everything the loader and the docs need."""

    section: str
    name: str
    parse: Callable[[str], Any]
    default: str | None
    """Raw text, as in ``config.ini``; None: required."""
    doc: str
    ignored: bool = False
    """Upstream key accepted for compatibility, with no effect here."""

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def env(self) -> str:
        return env_name(self.section, self.name)


_REGISTRY: dict[str, tuple[type[Any], tuple[Key, ...]]] = {}


def setting(parse: Callable[[str], T], default: str | None, doc: str, *, repr: bool = True) -> T:
    """A dataclass field declaring one setting (see the module docstring)."""
    spec = _Spec(parse, default, doc)
    if default is None:
        found: T = dataclasses.field(repr=repr, metadata={_SPEC: spec})
        return found
    value = parse(default)
    return dataclasses.field(default_factory=lambda: value, repr=repr, metadata={_SPEC: spec})


def upstream(parse: Callable[[str], Any], default: str) -> _Spec:
    """An upstream key accepted and ignored: ``@section("app", version=upstream(...))``."""
    return _Spec(parse, default, IGNORED_DOC)


def section(name: str, **ignored: _Spec) -> Callable[[type[C]], type[C]]:
    """Register the settings fields of a section dataclass (apply above ``@dataclass``)."""

    def register(cls: type[C]) -> type[C]:
        keys = [
            Key(section=name, name=f.name, parse=spec.parse, default=spec.default, doc=spec.doc)
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if (spec := f.metadata.get(_SPEC)) is not None
        ]
        keys += [
            Key(section=name, name=key, parse=s.parse, default=s.default, doc=s.doc, ignored=True)
            for key, s in ignored.items()
        ]
        _REGISTRY[name] = (cls, tuple(keys))
        return cls

    return register


def registry() -> dict[str, tuple[type[Any], tuple[Key, ...]]]:
    """Section name -> (its dataclass, its keys), in declaration order."""
    return dict(_REGISTRY)
