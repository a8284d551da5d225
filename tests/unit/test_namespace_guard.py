"""The namespace guard: which REMOTE namespaces a pod may be written to, and the 403 that
names the namespace and the key refusing it (README "Security")."""

from __future__ import annotations

import pytest

from sidecar import settings
from sidecar.api import wire
from sidecar.core.shape import WireError
from sidecar.offload.namespace_guard import check_remote_namespace, matching
from sidecar.offload.translate import build_plan
from sidecar.settings import OffloadingSettings
from tests import podshapes

UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"


def offloading(**environ: str) -> OffloadingSettings:
    return settings.load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", **environ}).offloading


def refusal(remote: str, config: OffloadingSettings, local: str | None = None) -> str:
    with pytest.raises(WireError) as caught:
        check_remote_namespace(remote, local_namespace=local or remote, offloading=config)
    assert caught.value.status == 403
    assert "\n" not in caught.value.message
    return caught.value.message


def test_patterns_are_names_or_prefixes() -> None:
    assert matching("kube-system", ["kube-system"]) == "kube-system"
    assert matching("kube-system", ["kube-*"]) == "kube-*"
    assert matching("kube-systemx", ["kube-system"]) is None
    assert matching("anything", ["*"]) == "*"
    assert matching("team-a", ["team-b", "team-*"]) == "team-*"


@pytest.mark.parametrize("remote", ["kube-system", "kube-public", "kube-node-lease"])
def test_the_system_namespaces_are_refused_by_default(remote: str) -> None:
    message = refusal(remote, offloading())
    assert message == (
        f"remote namespace '{remote}' is refused: it matches '{remote}' in "
        "offloading.namespace_deny"
    )


def test_other_namespaces_are_admitted_by_default() -> None:
    for remote in ("default", "offloading-kube-system", "kube-systems", "team-a"):
        check_remote_namespace(remote, local_namespace=remote, offloading=offloading())


def test_the_local_namespace_is_named_when_the_prefix_changed_it() -> None:
    config = offloading(OFFLOADING_NAMESPACE_DENY='["offloading-*"]')
    message = refusal("offloading-team", config, local="team")
    assert message.startswith(
        "remote namespace 'offloading-team' (for local namespace 'team') is refused"
    )


def test_the_sidecars_own_namespace_is_refused_whatever_the_lists_say() -> None:
    config = offloading(
        POD_NAMESPACE="interlink",
        OFFLOADING_NAMESPACE_DENY="[]",
        OFFLOADING_NAMESPACE_ALLOW='["interlink"]',
    )
    assert refusal("interlink", config) == (
        "remote namespace 'interlink' is refused: it is the sidecar's own namespace "
        "($POD_NAMESPACE)"
    )
    # Another namespace than the sidecar's is not refused for being "own".
    elsewhere = offloading(POD_NAMESPACE="interlink-other")
    check_remote_namespace("interlink", local_namespace="interlink", offloading=elsewhere)


def test_an_allow_list_admits_only_its_namespaces_and_deny_wins() -> None:
    config = offloading(OFFLOADING_NAMESPACE_ALLOW='["offloading-*", "kube-system"]')
    check_remote_namespace("offloading-a", local_namespace="a", offloading=config)
    assert refusal("default", config).endswith(
        "matches nothing in offloading.namespace_allow (offloading-*, kube-system)"
    )
    assert "offloading.namespace_deny" in refusal("kube-system", config)


@pytest.mark.parametrize(
    ("environ", "local", "remote"),
    [
        # No prefix (upstream's default): the local namespace is the remote one.
        ({}, "kube-system", "kube-system"),
        # A prefix, but the namespace is excluded from it.
        (
            {
                "OFFLOADING_NAMESPACE_PREFIX": "offloading",
                "OFFLOADING_NAMESPACE_PREFIX_EXCLUSIONS": '["kube-system"]',
            },
            "kube-system",
            "kube-system",
        ),
        # A prefix that spells a system namespace: the REMOTE name is what is checked.
        ({"OFFLOADING_NAMESPACE_PREFIX": "kube"}, "system", "kube-system"),
    ],
)
def test_build_plan_refuses_a_pod_bound_for_a_denied_namespace(
    environ: dict[str, str], local: str, remote: str
) -> None:
    config = settings.load(None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", **environ})
    the_pod = podshapes.pod(UID, "hello", {"containers": [podshapes.container("c")]})
    the_pod["metadata"]["namespace"] = local
    request = wire.parse_create(podshapes.body(the_pod))
    with pytest.raises(WireError) as caught:
        build_plan(request, offloading=config.offloading, mesh_settings=config.mesh)
    assert caught.value.status == 403
    assert f"remote namespace '{remote}'" in caught.value.message
    assert "offloading.namespace_deny" in caught.value.message


def test_build_plan_admits_a_system_namespace_moved_under_the_prefix() -> None:
    config = settings.load(
        None, {"APP_SOCKET_ADDRESS": "unix:///x.sock", "OFFLOADING_NAMESPACE_PREFIX": "offloading"}
    )
    the_pod = podshapes.pod(
        UID, "hello", {"containers": [podshapes.container("c")]}, namespace="kube-system"
    )
    plan = build_plan(
        wire.parse_create(podshapes.body(the_pod)),
        offloading=config.offloading,
        mesh_settings=config.mesh,
    )
    assert plan.namespace == "offloading-kube-system"
