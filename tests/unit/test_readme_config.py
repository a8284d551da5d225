"""The README's configuration reference matches the settings schema: every key, its
environment variable and its default (docs that drift are worse than none)."""

from __future__ import annotations

import re
from pathlib import Path

from sidecar import settings

README = Path(__file__).resolve().parents[2] / "README.md"


def reference_rows() -> dict[str, tuple[str, str]]:
    text = README.read_text()
    start = text.index("| key | environment variable | default | meaning |")
    rows: dict[str, tuple[str, str]] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        key, env, default = (cell.strip() for cell in line.strip("|").split("|")[:3])
        rows[key.strip("`")] = (env.strip("`"), default)
    return rows


def test_every_key_is_documented_with_its_environment_variable_and_default() -> None:
    rows = reference_rows()
    schema = {
        f"{section}.{key}": (settings.env_name(section, key), spec.default)
        for section, keys in settings._SCHEMA.items()
        for key, spec in keys.items()
    }
    assert sorted(rows) == sorted(schema)
    for name, (env, default) in schema.items():
        documented_env, documented_default = rows[name]
        assert documented_env == env, name
        if default is None:
            assert documented_default == "**required**", name
        elif default:
            assert documented_default == f"`{default}`", name
        else:
            assert re.fullmatch(r'|`\{\}`|`\[\]`|`""`', documented_default), name


def test_every_metric_is_documented_with_its_labels() -> None:
    from dataclasses import fields

    from prometheus_client import CollectorRegistry

    from metrics import make_metrics

    text = README.read_text()
    start = text.index("| metric | type | labels | meaning |")
    documented: dict[str, set[str]] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        name, _type, labels = (cell.strip() for cell in line.strip("|").split("|")[:3])
        documented[name.strip("`")] = {label.strip("` ") for label in labels.split(",") if label}
    catalogue = make_metrics(CollectorRegistry(), version="test")
    expected = {"sidecar_remote_pods": {"phase"}, "sidecar_build_info": {"version"}}
    for field in fields(catalogue):
        metric = getattr(catalogue, field.name)
        if field.name in ("registry", "build_info"):
            continue
        suffix = "_total" if metric._type == "counter" else ""
        expected[metric._name + suffix] = set(metric._labelnames)
    assert documented == expected
