"""Pods a test submits to LOCAL, remembered so that the test's end removes them and
checks that nothing of ours is left anywhere (the ``submit`` fixture)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.e2e.chain.topology import Chain
from tests.e2e.checks import CLEANUP_SECONDS, assert_remote_clean
from tests.e2e.deadlines import wait_for
from tests.e2e.kubectl import Kubectl


class Submit:
    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl
        self.names: list[str] = []

    def __call__(self, manifest: dict[str, Any]) -> str:
        """``kubectl apply`` one pod manifest; its name."""
        name = str(manifest["metadata"]["name"])
        self.names.append(name)
        self.kubectl.apply(manifest)
        return name

    def many(self, manifests: Sequence[dict[str, Any]]) -> list[str]:
        """Apply several pods in one ``kubectl apply`` (a burst); their names."""
        names = [str(m["metadata"]["name"]) for m in manifests]
        self.names += names
        self.kubectl.apply({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        return names

    def cleanup(self, chain: Chain) -> None:
        """Delete what is left of the test's pods, then fail unless LOCAL has none of them
        and REMOTE holds nothing of ours (both polled with a deadline)."""
        if not self.names:
            return
        # The deletion itself is not under test here: no need to wait out the grace period.
        self.kubectl.run(
            "delete", "pod", *self.names, "--ignore-not-found", "--wait=false", "--grace-period=1"
        )
        wait_for(
            f"the test's pods ({', '.join(self.names)}) to be gone from LOCAL",
            lambda: self.kubectl.existing(self.names),
            lambda left: not left,
            timeout=CLEANUP_SECONDS,
            context=chain.diagnostics,
        )
        assert_remote_clean(chain)
