"""Remote names: upstream-compatible where upstream was right, the uid never cut."""

from __future__ import annotations

from sidecar.core import naming

UID = "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"


def upstream_scope(name: str, uid: str) -> str:
    """The upstream plugin's rule, for comparison: sanitize((name-uid)[:63])."""
    return naming.sanitize(f"{name}-{uid}"[:63])


def test_short_names_match_upstream() -> None:
    for name in ("hello", "Hello_World.v2", "a" * 26):
        assert naming.scoped_name(name, UID) == upstream_scope(name, UID)


def test_long_names_keep_the_whole_uid() -> None:
    name = "a-very-long-deployment-name-that-goes-on-and-on-x7k2p"
    scoped = naming.scoped_name(name, UID)
    assert scoped.endswith(UID)
    assert len(scoped) <= 63
    assert scoped.startswith("a-very-long")


def test_two_long_names_with_the_same_prefix_do_not_collide() -> None:
    other = "1f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
    name = "x" * 70
    assert naming.scoped_name(name, UID) != naming.scoped_name(name, other)


def test_cut_never_leaves_a_dash_before_the_uid() -> None:
    name = "abcdefghijklmnopqrstuvwxyz-" + "b" * 10
    scoped = naming.scoped_name(name, UID)
    assert "--" not in scoped


def test_remote_namespace_prefix_and_exclusions() -> None:
    assert naming.remote_namespace("team", prefix="offloading", exclusions=[]) == "offloading-team"
    assert (
        naming.remote_namespace("kube-system", prefix="offloading", exclusions=["kube-system"])
        == "kube-system"
    )
    assert naming.remote_namespace("team", prefix="", exclusions=[]) == "team"


def test_long_remote_namespaces_stay_valid_and_distinct() -> None:
    first = naming.remote_namespace("n" * 60 + "a", prefix="offloading", exclusions=[])
    second = naming.remote_namespace("n" * 60 + "b", prefix="offloading", exclusions=[])
    assert len(first) <= 63 and len(second) <= 63
    assert first != second


def test_selector_matches_the_labels() -> None:
    labels = naming.ownership_labels(UID)
    selector = dict(part.split("=") for part in naming.pod_selector(UID).split(","))
    assert selector == labels
