"""The typed accessor layer: Go's zero values for missing and null, a 422 naming the JSON
path for a wrong type, never the value itself."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.core import shape
from sidecar.core.shape import WireError


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(WireError) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 422
    return caught.value.message


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "null"),
        (True, "a boolean"),
        (3, "a number"),
        (2.5, "a number"),
        ("x", "a string"),
        ([1], "a list"),
        ({"a": 1}, "an object"),
    ],
)
def test_kind_of_names_the_json_type(value: Any, kind: str) -> None:
    assert shape.kind_of(value) == kind


def test_paths_quote_keys_that_are_not_identifiers() -> None:
    assert shape.child("pod.metadata", "labels") == "pod.metadata.labels"
    assert shape.child("", "container") == "container"
    assert (
        shape.child("pod.metadata.annotations", "interlink.io/remote-pvc")
        == 'pod.metadata.annotations["interlink.io/remote-pvc"]'
    )
    long_key = shape.child("p", "k/" * 500)
    assert len(long_key) < 80
    assert "..." in long_key


def test_missing_and_null_are_zero_values() -> None:
    parent: dict[str, Any] = {"n": None}
    for key in ("n", "missing"):
        assert shape.object_at(parent, key, "p") is None
        assert shape.list_at(parent, key, "p") == []
        assert list(shape.objects_at(parent, key, "p")) == []
        assert shape.string_at(parent, key, "p") == ""
        assert shape.strings_at(parent, key, "p") == []
        assert shape.string_map_at(parent, key, "p") == {}
        assert shape.bool_at(parent, key, "p") is False
        assert shape.int_at(parent, key, "p") == 0


def test_readers_return_the_originals_so_edits_reach_the_pod() -> None:
    env = [{"name": "A"}]
    parent = {"env": env, "labels": {"a": "b"}}
    for _, entry in shape.objects_at(parent, "env", "c"):
        entry["value"] = "x"
    assert env == [{"name": "A", "value": "x"}]
    assert shape.string_map_at(parent, "labels", "m") is parent["labels"]


@pytest.mark.parametrize(
    ("call", "value", "message"),
    [
        (shape.object_at, "text", "p.k: expected an object, got a string"),
        (shape.list_at, {"a": 1}, "p.k: expected a list, got an object"),
        (shape.list_at, "", "p.k: expected a list, got a string"),
        (shape.string_at, 5, "p.k: expected a string, got a number"),
        (shape.strings_at, ["a", 5], "p.k[1]: expected a string, got a number"),
        (shape.string_map_at, {"a": "b", "c": [1]}, "p.k.c: expected a string, got a list"),
        (shape.string_map_at, [["a", "b"]], "p.k: expected an object, got a list"),
        (shape.bool_at, "true", "p.k: expected true or false, got a string"),
        (shape.int_at, "5", "p.k: expected an integer, got a string"),
        (shape.int_at, 5.0, "p.k: expected an integer, got a number"),
        (shape.int_at, True, "p.k: expected an integer, got a boolean"),
    ],
)
def test_a_wrong_type_names_the_path_and_both_types(call: Any, value: Any, message: str) -> None:
    assert refused(call, {"k": value}, "k", "p") == message


def test_list_elements_must_be_objects() -> None:
    message = refused(list, shape.objects_at({"env": [{}, "x"]}, "env", "c"))
    assert message == "c.env[1]: expected an object, got a string"


def test_a_wrong_value_is_never_echoed() -> None:
    secret = "hunter2-very-secret"
    message = refused(shape.string_map_at, {"data": {"password": [secret]}}, "data", "s")
    assert secret not in message
    message = refused(shape.string_at, {"token": {"value": secret}}, "token", "s")
    assert secret not in message


def test_required_strings() -> None:
    assert refused(shape.string_at, {"k": ""}, "k", "p", required=True) == "p.k: required"
    assert refused(shape.string_at, {}, "k", "p", required=True) == "p.k: required"


def test_integer_bounds_are_named_and_the_number_cut() -> None:
    assert shape.int_at({"k": 2**63 - 1}, "k", "p") == 2**63 - 1
    message = refused(shape.int_at, {"k": 10**20}, "k", "p")
    assert message.startswith("p.k: 100000000000000000000 is out of range (0 to ")
    message = refused(shape.int_at, {"k": 10**4000}, "k", "p")
    assert len(message) < 200
    assert refused(shape.int_at, {"k": -1}, "k", "p").startswith("p.k: -1 is out of range")
