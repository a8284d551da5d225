"""A soak through the real chain: 100 pods of mixed shapes submitted at once with kubectl,
some deleted while being created; every pod must end in its expected phase and, once all
are deleted, nothing of ours may be left on REMOTE.

The figures (wall times, the sidecar's create and delete outcomes) are printed at the
end and quoted in the README.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e import manifests
from tests.e2e.chain.topology import ALL_NODES, Chain
from tests.e2e.checks import assert_remote_clean, state_of, status
from tests.e2e.deadlines import wait_for
from tests.e2e.kubectl import Kubectl, Pod
from tests.integration.plugin_client import metric_value

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200, func_only=True)]

PER_SHAPE = 10
DELETED_WHILE_CREATING = 10
SETTLE_SECONDS = 300.0
GONE_SECONDS = 180.0
CONFIG_MAP = "soak-config"
SECRET = "soak-secret"

Verdict = Callable[[Pod], bool | None]
"""True: in its expected final state; False: in a wrong final state; None: not yet."""


def running(pod: Pod) -> bool | None:
    current = status(pod)
    if current.get("phase") in ("Failed", "Succeeded"):
        return False
    containers = current.get("containerStatuses") or []
    ok = current.get("phase") == "Running" and all(state_of(c) == "running" for c in containers)
    return True if ok and containers else None


def restarted(pod: Pod) -> bool | None:
    verdict = running(pod)
    if not verdict:
        return verdict
    containers = status(pod)["containerStatuses"]
    return True if all(c.get("restartCount") == 1 for c in containers) else None


def ended(phase: str, reason: str) -> Verdict:
    def verdict(pod: Pod) -> bool | None:
        current = status(pod)
        if current.get("phase") not in ("Failed", "Succeeded"):
            return None
        return current.get("phase") == phase and current.get("reason") == reason

    return verdict


def volumes(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    spec["volumes"] = [
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
        {"name": "secret", "secret": {"secretName": SECRET, "defaultMode": 0o400}},
        {
            "name": "bundle",
            "projected": {
                "sources": [
                    {
                        "configMap": {
                            "name": CONFIG_MAP,
                            "items": [{"key": "greeting", "path": "g"}],
                        }
                    },
                    {"secret": {"name": SECRET, "items": [{"key": "password", "path": "p"}]}},
                    {
                        "downwardAPI": {
                            "items": [
                                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
                            ]
                        }
                    },
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                ]
            },
        },
    ]
    spec["containers"][0]["volumeMounts"] = [
        {"name": "config", "mountPath": "/etc/config"},
        {"name": "secret", "mountPath": "/etc/secret"},
        {"name": "bundle", "mountPath": "/etc/bundle"},
    ]
    return manifest


def env(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["spec"]["containers"][0]["env"] = [
        {
            "name": "GREETING",
            "valueFrom": {"configMapKeyRef": {"name": CONFIG_MAP, "key": "greeting"}},
        },
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "password"}}},
    ]
    manifest["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": CONFIG_MAP}, "prefix": "CM_"},
        {"secretRef": {"name": SECRET}, "prefix": "S_"},
    ]
    return manifest


def native_sidecar(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"]["annotations"] = {"test.interlink.io/native-sidecar": "true"}
    manifest["spec"]["initContainers"] = [
        manifests.container("proxy") | {"restartPolicy": "Always"}
    ]
    return manifest


@dataclass(frozen=True)
class Shape:
    build: Callable[[str, str], dict[str, Any]]
    verdict: Verdict


def _pod(**options: Any) -> Callable[[str, str], dict[str, Any]]:
    return lambda name, node: manifests.pod(name, node, **options)


SHAPES: dict[str, Shape] = {
    "plain": Shape(_pod(), running),
    "init": Shape(_pod(init_containers=("setup-a", "setup-b")), running),
    "native-sidecar": Shape(lambda n, node: native_sidecar(manifests.pod(n, node)), running),
    "failing-init": Shape(
        _pod(
            init_containers=("setup",),
            annotations={"test.interlink.io/init-exit-code": "3"},
            restart_policy="Never",
        ),
        ended("Failed", "Error: 3"),
    ),
    "exit-0": Shape(
        _pod(annotations={manifests.EXIT_CODE: "0"}, restart_policy="Never"),
        ended("Succeeded", "Completed"),
    ),
    "exit-3": Shape(
        _pod(annotations={manifests.EXIT_CODE: "3"}, restart_policy="Never"),
        ended("Failed", "Error: 3"),
    ),
    "restart": Shape(_pod(annotations={manifests.RESTART: "true"}), restarted),
    "volumes": Shape(lambda n, node: volumes(manifests.pod(n, node)), running),
    "env": Shape(lambda n, node: env(manifests.pod(n, node)), running),
}


def sidecar_outcomes(chain: Chain) -> Counter[str]:
    counts: Counter[str] = Counter()
    for kind, outcomes in (
        ("creates", ("created", "existing", "invalid", "failed", "deleted_first")),
        ("deletes", ("done", "deferred")),
    ):
        for outcome in outcomes:
            series = f'sidecar_offload_{kind}_total{{outcome="{outcome}"}}'
            counts[f"{kind}.{outcome}"] = int(metric_value(chain.sidecar, series))
    return counts


def pods_by_name(kubectl: Kubectl, label: str) -> dict[str, Pod]:
    listing = json.loads(kubectl.run("get", "pods", "-l", label, "-o", "json").stdout)
    return {p["metadata"]["name"]: p for p in listing["items"]}


def test_100_mixed_pods_end_right_and_leave_nothing(
    chain: Chain, kubectl: Kubectl, capsys: pytest.CaptureFixture[str]
) -> None:
    run = manifests.unique_name("soak")
    label = f"soak={run}"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": CONFIG_MAP},
                    "data": {"greeting": "hello", "app.properties": "a=1\n"},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": SECRET},
                    "stringData": {"password": "s3cret"},
                },
            ],
        }
    )
    expected: dict[str, Verdict] = {}
    pods: list[dict[str, Any]] = []
    shapes = [s for s in SHAPES for _ in range(PER_SHAPE)] + ["plain", "volumes"] * (
        DELETED_WHILE_CREATING // 2
    )
    doomed: list[str] = []
    for index, shape in enumerate(shapes):
        name = f"{run}-{shape}-{index}"
        manifest = SHAPES[shape].build(name, ALL_NODES[index % len(ALL_NODES)])
        manifest["metadata"]["labels"] = {"soak": run}
        pods.append(manifest)
        if index >= len(SHAPES) * PER_SHAPE:
            doomed.append(name)
        else:
            expected[name] = SHAPES[shape].verdict
    before = sidecar_outcomes(chain)
    started = time.monotonic()
    try:
        kubectl.apply({"apiVersion": "v1", "kind": "List", "items": pods})
        kubectl.run("delete", "pod", *doomed, "--wait=false")  # while being created
        submitted = time.monotonic() - started

        def verdicts() -> dict[str, bool | None]:
            found = pods_by_name(kubectl, label)
            return {n: (v(found[n]) if n in found else False) for n, v in expected.items()}

        final = wait_for(
            "every pod in its final state (or one in a wrong one)",
            verdicts,
            lambda seen: all(v is not None for v in seen.values()),
            timeout=SETTLE_SECONDS,
            context=chain.diagnostics,
        )
        settled = time.monotonic() - started
        wrong = {
            n: status(p)
            for n, p in pods_by_name(kubectl, label).items()
            if n in expected and not final[n]
        }
        assert not wrong, f"{len(wrong)} pod(s) in a wrong final state: {wrong}"
        wait_for(
            "the pods deleted while being created to be gone",
            lambda: kubectl.existing(doomed),
            lambda left: not left,
            timeout=GONE_SECONDS,
            context=chain.diagnostics,
        )
    finally:
        kubectl.run("delete", "pods", "-l", label, "--wait=false", "--grace-period=1")
    wait_for(
        "every pod of the soak to be gone from LOCAL",
        lambda: list(pods_by_name(kubectl, label)),
        lambda left: not left,
        timeout=GONE_SECONDS,
        context=chain.diagnostics,
    )
    assert_remote_clean(chain, timeout=GONE_SECONDS)
    cleaned = time.monotonic() - started
    kubectl.run("delete", "configmap", CONFIG_MAP)
    kubectl.run("delete", "secret", SECRET)
    outcomes = sidecar_outcomes(chain) - before
    with capsys.disabled():
        print(
            f"\n[soak] {len(pods)} pods ({len(expected)} to settle, {len(doomed)} deleted while "
            f"being created) over {len(ALL_NODES)} virtual nodes: submitted in {submitted:.1f} s, "
            f"all in their final state after {settled:.1f} s, 0 wrong; every pod deleted and "
            f"REMOTE clean after {cleaned:.1f} s; sidecar: {dict(sorted(outcomes.items()))}"
        )
