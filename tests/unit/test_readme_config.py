"""The README's metrics reference matches the catalogue (docs that drift are worse than
none). The configuration reference is checked in test_settings_keys.py."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


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
