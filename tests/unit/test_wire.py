"""interLink's request bodies: exact names, nulls, and errors that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.api import wire

UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
POD = {
    "metadata": {"name": "p", "namespace": "default", "uid": UID},
    "spec": {"containers": [{"name": "main", "image": "busybox"}]},
}


def test_create_accepts_one_object_or_a_list_of_one() -> None:
    body = {"pod": POD, "container": None, "jobConfig": {}}
    assert wire.parse_create(body).ref.uid == UID
    assert wire.parse_create([body]).ref.name == "p"
    assert wire.parse_create(body).containers == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {
                "pod": {
                    "metadata": {"name": "p", "namespace": "d"},
                    "spec": {"containers": [{"name": "c"}]},
                }
            },
            "pod.metadata.uid: required",
        ),
        (
            {
                "pod": {
                    "metadata": {"name": "p", "namespace": "d", "uid": UID},
                    "spec": {"containers": []},
                }
            },
            "pod.spec.containers: at least one container",
        ),
        (
            {"pod": {"metadata": {"name": 3, "namespace": "d", "uid": UID}, "spec": {}}},
            "pod.metadata.name: expected a string",
        ),
        ({"container": []}, "pod: expected an object, got null"),
        ([], "expected one RetrievedPodData"),
    ],
)
def test_create_errors_name_the_field(body: object, message: str) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.parse_create(body)
    assert message in caught.value.message
    assert caught.value.status == 422


def test_invalid_json_is_a_400() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.decode_json(b"{not json")
    assert caught.value.status == 400


def test_status_body_null_is_the_ping() -> None:
    assert wire.parse_pod_list(None) == []
    assert wire.parse_pod_list([POD]) == [POD]


def test_log_request_wire_names() -> None:
    request = wire.parse_log_request(
        {
            "Namespace": "default",
            "PodUID": UID,
            "PodName": "p",
            "ContainerName": "main",
            "Opts": {
                "Tail": 0,
                "Bytes": 100,
                "Timestamps": True,
                "Follow": False,
                "Previous": False,
                "SinceSeconds": 0,
                "SinceTime": "0001-01-01T00:00:00Z",
            },
        }
    )
    assert request.container == "main"
    assert request.options.limit_bytes == 100
    assert request.options.timestamps is True
    assert request.options.since_time is None


def test_log_request_since_time_is_parsed_with_its_zone() -> None:
    request = wire.parse_log_request(
        {
            "Namespace": "d",
            "PodUID": UID,
            "PodName": "p",
            "ContainerName": "",
            "Opts": {"SinceTime": "2026-11-21T10:00:00+01:00"},
        }
    )
    assert request.options.since_time is not None
    assert request.options.since_time.utcoffset() is not None


def test_log_request_bad_option_names_it() -> None:
    with pytest.raises(wire.WireError, match=r"Opts.Tail"):
        wire.parse_log_request(
            {"Namespace": "d", "PodUID": UID, "PodName": "p", "Opts": {"Tail": -1}}
        )


@pytest.mark.parametrize(
    "value",
    [
        [{"name": "p", "containers": [{"name": "a", "state": {"waiting": {}}}], "n": 2**31}],
        {"message": "é ✓ 日本"},
        {"name": "\ud800"},  # a lone surrogate (valid in a JSON body): orjson refuses it
        {"restartCount": 2**70},  # beyond 64 bits: orjson refuses it
        None,
    ],
)
def test_answers_encode_as_json_would(value: Any) -> None:
    encoded = wire.encode_json(value)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == json.loads(json.dumps(value))
