"""Every setting is declared once (``sidecar/settings/keys.py``); everything that lists
settings agrees with the declarations: the dataclasses, the README's configuration
reference and the chart (docs and charts that drift are worse than none)."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar import settings
from sidecar.settings.declare import IGNORED_DOC, registry

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CHART = ROOT / "chart"
SECTIONS = registry()
MINIMAL = {"APP_SOCKET_ADDRESS": "unix:///x.sock"}


def by_path() -> dict[str, settings.Key]:
    return {key.path: key for key in settings.KEYS}


def test_every_declaration_parses_once_into_its_field_default() -> None:
    assert len(by_path()) == len(settings.KEYS), "a key declared twice"
    assert list(SECTIONS) == ["app", "log", "k8s", "offloading", "mesh", "tcp_tunnel"]
    loaded = settings.load(None, MINIMAL)
    for section, (cls, keys) in SECTIONS.items():
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in keys:
            assert key.env == f"{section}_{key.name}".upper(), key.path
            assert key.doc.strip(), f"{key.path}: no doc"
            if key.ignored:
                assert key.name not in fields, f"{key.path}: ignored, yet a field"
                assert key.doc == IGNORED_DOC
                continue
            assert key.name in fields, f"{key.path}: not a field of {cls.__name__}"
            if key.default is None:
                continue
            value = key.parse(key.default)
            field = fields[key.name]
            assert field.default_factory is not dataclasses.MISSING, key.path
            assert field.default_factory() == value, f"{key.path}: dataclass default drifted"
            assert getattr(getattr(loaded, section), key.name) == value, key.path


def test_ignored_keys_are_accepted_and_listed_never_read() -> None:
    loaded = settings.load(None, {**MINIMAL, "APP_VERSION": "1.2.3", "LOG_RICH_ENABLED": "true"})
    assert loaded.ignored_keys == ("app.version", "log.rich_enabled")
    assert not hasattr(loaded.app, "version")
    sources = "\n".join(p.read_text() for p in (ROOT / "sidecar").rglob("*.py"))
    for key in settings.KEYS:
        if key.ignored:
            assert not re.search(rf"\.{key.section}\.{key.name}\b", sources), key.path


def choice_keys() -> Iterator[tuple[settings.Key, type[enum.Enum]]]:
    loaded = settings.load(None, MINIMAL)
    for key in settings.KEYS:
        if not key.ignored:
            value = getattr(getattr(loaded, key.section), key.name)
            if isinstance(value, enum.Enum):
                yield key, type(value)


def test_every_choice_is_an_enum_and_a_wrong_value_names_the_key_and_the_choices() -> None:
    found = {key.path: kind for key, kind in choice_keys()}
    assert found == {
        "log.level": settings.LogLevel,
        "offloading.capacity": settings.Capacity,
        "offloading.orphan_policy": settings.OrphanPolicy,
        "tcp_tunnel.dial_mode": settings.DialMode,
        "tcp_tunnel.port_policy": settings.PortPolicy,
        "tcp_tunnel.pods": settings.TunnelPods,
    }
    for path, kind in found.items():
        key = by_path()[path]
        for member in kind:
            loaded = settings.load(None, {**MINIMAL, key.env: str(member.value).swapcase()})
            assert getattr(getattr(loaded, key.section), key.name) is member
        with pytest.raises(settings.SettingsError) as caught:
            settings.load(None, {**MINIMAL, key.env: "bogus"})
        (problem,) = caught.value.problems
        allowed = ", ".join(str(m.value) for m in kind)
        assert problem == f"{path} (from ${key.env}): expected one of {allowed}, got 'bogus'"


# ---------------------------------------------------------------------------------------
# The README's configuration reference.


def readme_rows() -> dict[str, tuple[str, str, str]]:
    text = README.read_text()
    start = text.index("| key | environment variable | default | meaning |")
    rows: dict[str, tuple[str, str, str]] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        key, env, default, meaning = (cell.strip() for cell in line.strip("|").split(" | ", 3))
        assert key.strip("`") not in rows, f"README: {key} listed twice"
        rows[key.strip("`")] = (env.strip("`"), default, meaning)
    return rows


def test_readme_lists_every_key_with_its_environment_variable_and_default() -> None:
    rows, keys = readme_rows(), by_path()
    assert not sorted(set(keys) - set(rows)), "declared, missing from the README table"
    assert not sorted(set(rows) - set(keys)), "in the README table, not declared"
    for path, key in keys.items():
        env, default, meaning = rows[path]
        assert env == key.env, f"README {path}: environment variable {env}, declared {key.env}"
        if key.default is None:
            assert default == "**required**", f"README {path}: required, says {default}"
        elif key.default:
            assert default == f"`{key.default}`", f"README {path}: {default} != {key.default}"
        else:
            assert re.fullmatch(r'|`\{\}`|`\[\]`|`""`', default), f"README {path}: {default}"
        if key.ignored:
            assert "accepted" in meaning, f"README {path}: say it is accepted and ignored"


def test_readme_says_app_version_is_accepted_and_ignored() -> None:
    assert "accepted for upstream compatibility, ignored" in readme_rows()["app.version"][2]


# ---------------------------------------------------------------------------------------
# The chart: every key it knows, refuses, sets or mentions is declared.

KEY_MENTION = re.compile(
    r"(?:(?<=config\.)|(?<![\w./-]))(app|log|k8s|offloading|mesh|tcp_tunnel)\.([a-z_]+)(?!\.?[\w/])"
)


def template_block(name: str) -> Any:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    block = re.search(rf'define "{name}" -}}}}\n(.*?)\n{{{{- end }}}}', helpers, re.S)
    assert block is not None, f"_helpers.tpl: no {name}"
    return yaml.safe_load(block.group(1))


def test_the_charts_known_keys_are_exactly_the_declared_ones() -> None:
    known: dict[str, list[str]] = template_block("sidecar.knownKeys")
    declared = {section: [key.name for key in keys] for section, (_, keys) in SECTIONS.items()}
    assert sorted(known) == sorted(declared), "_helpers.tpl sidecar.knownKeys: sections"
    for section, names in declared.items():
        missing = sorted(set(names) - set(known[section]))
        extra = sorted(set(known[section]) - set(names))
        assert not missing, f"_helpers.tpl sidecar.knownKeys [{section}] lacks {missing}"
        assert not extra, f"_helpers.tpl sidecar.knownKeys [{section}] has undeclared {extra}"
        assert len(known[section]) == len(set(known[section])), f"[{section}]: duplicates"


def test_every_key_the_chart_refuses_or_sets_is_declared() -> None:
    keys = by_path()
    refused: dict[str, str] = template_block("sidecar.refusedKeys")
    assert not sorted(set(refused) - set(keys)), "_helpers.tpl sidecar.refusedKeys"
    for values in (CHART / "values.yaml", CHART / "ci" / "all-on-values.yaml"):
        config = yaml.safe_load(values.read_text()).get("config") or {}
        assert set(config) <= set(SECTIONS), f"{values.name}: config sections"
        given = {f"{section}.{name}" for section, body in config.items() for name in body or {}}
        assert not sorted(given - set(keys)), f"{values.name}: config keys not declared"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]["config"]["properties"]) == set(SECTIONS)


@pytest.mark.parametrize(
    "path",
    ["README.md", "values.yaml", "templates/NOTES.txt", "templates/_helpers.tpl"],
)
def test_every_key_the_chart_mentions_is_declared(path: str) -> None:
    text = (CHART / path).read_text()
    mentioned = {f"{m.group(1)}.{m.group(2)}" for m in KEY_MENTION.finditer(text)}
    assert mentioned, f"chart/{path}: the pattern finds no key (it is broken)"
    assert not sorted(mentioned - set(by_path())), f"chart/{path} mentions undeclared keys"
