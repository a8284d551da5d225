"""Workloads that really run: pods submitted with kubectl on LOCAL go through the chain
to REMOTE's real node (kubelet + containerd + runc: tests/localcluster/realnode), and
what a user sees on LOCAL (``kubectl get``, ``kubectl logs``) is checked against what
the program did and against what the remote kubelet reports.

How a pod gets there: chain/topology.py (the virtual nodes carry the real node's label
on LOCAL; the sidecar drops what targets the virtual node and keeps the rest). Images
come from the node's containerd only (``BUSYBOX_IMAGE``, ``imagePullPolicy: Never``).

The local pod's phase and container states are the virtual kubelet's (interLink 0.6.2,
execute.go ``checkPodsStatus``), fed by the sidecar's ``/status``; the wording it
imposes is asserted as such: a terminated container's reason becomes "Completed" or
"Error: <code>" (a failed pod's every container gets the failing one's), and a running
container is shown ready (the VK sets ``ready: true`` and the pod's Ready condition as
soon as one container runs, whatever its readiness probe says). Everything else
(exit codes, times, restart counts, last states, container ids) must be the remote
kubelet's.

Long-running containers trap SIGTERM, so that a delete (or a liveness kill) ends them
within a second instead of after the grace period.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.e2e import manifests, remote
from tests.e2e.chain.topology import NODES, Chain, has_real_node_label
from tests.e2e.checks import ended_pod, running_pod, state_of, status
from tests.e2e.deadlines import wait_for
from tests.e2e.kubectl import Kubectl, Pod
from tests.e2e.submit import Submit
from tests.localcluster.realnode import NODE_LABEL, NODE_NAME, toleration
from tests.realnode_pods import container

pytestmark = [pytest.mark.e2e, pytest.mark.realnode, pytest.mark.timeout(240, func_only=True)]

NODE = "vk-tcp"
"""The virtual node of the tests that do not depend on interLink's transport."""
STAYS = "trap 'exit 143' TERM; while :; do sleep 1; done"
"""A container's last step: run until stopped, stopping within a second on SIGTERM
(exit code 143, as a program killed by it)."""
ENDED_SECONDS = 90.0
REMOTE_SECONDS = 60.0
# Copied from the remote kubelet's container status as they are (sidecar/status/mapping.py).
SAME_AS_REMOTE = ("restartCount", "containerID", "image", "imageID")


@pytest.fixture
def real_node(chain: Chain) -> str:
    """The real node's name; skips (with why) when REMOTE has none. Fails if the label
    that sends pods there has left the virtual nodes (the virtual kubelet removed it)."""
    if chain.real_node is None:
        pytest.skip(f"REMOTE has no real node: {chain.real_node_why}")
    for name in NODES:
        assert has_real_node_label(chain.local, name), (
            f"virtual node {name} lost the label {NODE_LABEL[0]}={NODE_LABEL[1]}"
        )
    return NODE_NAME


@pytest.fixture
def local_objects(kubectl: Kubectl) -> Iterator[list[dict[str, Any]]]:
    """ConfigMaps and Secrets appended here are applied on LOCAL by the test and deleted
    at its end."""
    objects: list[dict[str, Any]] = []
    yield objects
    for obj in objects:
        kubectl.run(
            "delete", obj["kind"].lower(), obj["metadata"]["name"], "--ignore-not-found", "--wait"
        )


# --- manifests ---------------------------------------------------------------------------


def real_pod(
    name: str,
    containers: list[dict[str, Any]],
    *,
    node: str = NODE,
    init_containers: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    restart_policy: str = "Never",
) -> dict[str, Any]:
    """A pod for the real node through virtual node ``node`` (see the module docstring
    of chain/topology.py for the selector and tolerations)."""
    spec: dict[str, Any] = {
        "nodeSelector": {"kubernetes.io/hostname": node, NODE_LABEL[0]: NODE_LABEL[1]},
        "tolerations": [manifests.TOLERATION, toleration()],
        "restartPolicy": restart_policy,
        "containers": containers,
        "terminationGracePeriodSeconds": 2,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    if volumes:
        spec["volumes"] = volumes
    metadata = {"name": name, "namespace": "default", "labels": {"e2e": "chain-real"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


# --- reading both sides ------------------------------------------------------------------


def remote_pod(chain: Chain, local: Pod) -> dict[str, Any]:
    """The one REMOTE pod made for ``local``; it must be on the real node."""
    found = remote.remote_pods(chain.remote, local["metadata"]["uid"])
    assert len(found) == 1, f"one remote pod for {local['metadata']['name']}: {found}"
    [pod] = found
    assert pod["spec"].get("nodeName") == NODE_NAME, pod["spec"]
    return pod


def remote_ended(chain: Chain, local: Pod) -> dict[str, Any]:
    """The remote pod of ``local`` once its phase is terminal (it is, by the time the
    virtual kubelet has shown the local pod ended)."""
    return wait_for(
        f"the remote pod of {local['metadata']['name']} to end",
        lambda: remote_pod(chain, local),
        lambda pod: status(pod).get("phase") in ("Failed", "Succeeded"),
        timeout=REMOTE_SECONDS,
        context=chain.diagnostics,
    )


def by_name(pod: Pod | None, key: str = "containerStatuses") -> dict[str, Any]:
    return {c["name"]: c for c in status(pod).get(key) or []}


def assert_as_remote(local: dict[str, Any], remote_status: dict[str, Any]) -> None:
    """A local container status that ended carries the remote kubelet's exit code,
    times and identity (not its reason: the virtual kubelet rewrites it)."""
    mine, theirs = local["state"]["terminated"], remote_status["state"]["terminated"]
    for key in ("exitCode", "startedAt", "finishedAt"):
        assert mine.get(key) == theirs.get(key), (key, local, remote_status)
    for key in SAME_AS_REMOTE:
        assert local.get(key) == remote_status.get(key), (key, local, remote_status)


def _life(container_status: dict[str, Any]) -> tuple[object, ...]:
    """Which life of a restarting container a status describes, and how the last ended."""
    return (
        container_status.get("restartCount"),
        container_status.get("containerID"),
        state_of(container_status),
        container_status.get("lastState"),
    )


def lines_in_time_order(output: str, pod: str) -> list[tuple[str, str]]:
    """``kubectl logs --all-containers --prefix --timestamps`` output as (container,
    line) pairs in the order the lines were written. kubectl 1.35 prints the containers
    in no fixed order (it walks a Go map: pkg/cmd/logs ``sequentialConsumeRequest``),
    so the order is the log's own: the remote kubelet's nanosecond time stamps."""
    stamped = []
    for line in output.splitlines():
        prefix, _, rest = line.partition(" ")
        stamp, _, text = rest.partition(" ")
        assert prefix.startswith(f"[pod/{pod}/") and prefix.endswith("]"), line
        stamped.append((_instant(stamp), prefix.removeprefix(f"[pod/{pod}/")[:-1], text))
    return [(container, text) for _, container, text in sorted(stamped)]


def _instant(stamp: str) -> tuple[datetime, int]:
    """An RFC 3339 time with up to nanoseconds, as (whole seconds, nanoseconds)."""
    match = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    assert match, stamp
    whole, fraction, zone = match.groups()
    seconds = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return seconds, int((fraction or "0").ljust(9, "0")[:9])


# --- workloads ---------------------------------------------------------------------------


def test_hello_world_runs_there_and_its_output_shows_locally(
    chain: Chain, kubectl: Kubectl, submit: Submit, real_node: str, node: str
) -> None:
    """Through both virtual nodes (interLink over TCP and over the unix socket)."""
    name = submit(
        real_pod(
            manifests.unique_name("hello"),
            [container("main", 'echo "hello from $(hostname)"')],
            node=node,
        )
    )
    pod = ended_pod(kubectl, name, timeout=ENDED_SECONDS)
    assert pod["spec"]["nodeName"] == node
    assert status(pod)["phase"] == "Succeeded", status(pod)
    theirs = remote_ended(chain, pod)
    assert status(theirs)["phase"] == "Succeeded"
    main = by_name(pod)["main"]
    assert main["state"]["terminated"]["exitCode"] == 0
    assert main["state"]["terminated"]["reason"] == "Completed"
    assert_as_remote(main, by_name(theirs)["main"])
    hostname = theirs["spec"].get("hostname") or theirs["metadata"]["name"]
    assert kubectl.logs(name) == f"hello from {hostname}\n"


def test_a_program_sees_its_env_and_volumes(
    chain: Chain,
    kubectl: Kubectl,
    local_objects: list[dict[str, Any]],
    submit: Submit,
    real_node: str,
) -> None:
    """One pod, two containers: ``env`` prints its environment (literal values,
    ``valueFrom`` ConfigMap and Secret keys, ``envFrom`` a ConfigMap with a prefix);
    ``files`` prints every file of its ConfigMap, Secret and projected volumes (the
    mode as the program sees it, and the content in base64 so that bytes compare
    exactly)."""
    suffix = uuid.uuid4().hex[:6]
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"real-config-{suffix}"},
        "data": {"greeting": "hello from a ConfigMap", "app.conf": "line one\nline two\n"},
    }
    for_env: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"real-env-{suffix}"},
        "data": {"COLOR": "blue", "SIZE": "XL"},
    }
    secret_values = {"password": "s3cr3t 'single' \"double\" $dollar", "token.txt": "a file\n"}
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"real-secret-{suffix}"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret_values.items()},
    }
    for obj in (config, for_env, secret):
        local_objects.append(obj)
        kubectl.apply(obj)
    literal = "a literal, with 'quotes', \"double quotes\" and $HOME unexpanded"
    env_container = container(
        "env",
        "env",
        env=[
            {"name": "LITERAL", "value": literal},
            {
                "name": "FROM_CONFIGMAP",
                "valueFrom": {
                    "configMapKeyRef": {"name": config["metadata"]["name"], "key": "greeting"}
                },
            },
            {
                "name": "FROM_SECRET",
                "valueFrom": {
                    "secretKeyRef": {"name": secret["metadata"]["name"], "key": "password"}
                },
            },
        ],
        envFrom=[{"configMapRef": {"name": for_env["metadata"]["name"]}, "prefix": "CM_"}],
    )
    files_script = (
        # -L: the kubelet's files are links into a hidden ..data directory (left out)
        "for f in $(find -L /cfg /sec /proj -type f | sort); do"
        ' case "$f" in */..*) continue;; esac;'
        ' echo "$f $(stat -L -c %a "$f") $(base64 "$f" | tr -d "\\n")";'
        " done"
    )
    files_container = container(
        "files",
        files_script,
        volumeMounts=[
            {"name": "cfg", "mountPath": "/cfg"},
            {"name": "sec", "mountPath": "/sec"},
            {"name": "proj", "mountPath": "/proj"},
        ],
    )
    volumes = [
        {
            "name": "cfg",
            "configMap": {
                "name": config["metadata"]["name"],
                "defaultMode": 0o440,
                "items": [
                    {"key": "app.conf", "path": "conf/app.conf"},
                    {"key": "greeting", "path": "greeting", "mode": 0o400},
                ],
            },
        },
        {"name": "sec", "secret": {"secretName": secret["metadata"]["name"], "defaultMode": 0o400}},
        {
            "name": "proj",
            "projected": {
                "defaultMode": 0o444,
                "sources": [
                    {
                        "configMap": {
                            "name": config["metadata"]["name"],
                            "items": [
                                {"key": "greeting", "path": "from-cm/greeting", "mode": 0o600}
                            ],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            ]
                        }
                    },
                ],
            },
        },
    ]
    name = submit(
        real_pod(manifests.unique_name("config"), [env_container, files_container], volumes=volumes)
    )
    pod = ended_pod(kubectl, name, timeout=ENDED_SECONDS)
    assert status(pod)["phase"] == "Succeeded", status(pod)

    env = dict(line.split("=", 1) for line in kubectl.logs(name, "-c", "env").splitlines())
    assert env["LITERAL"] == literal
    assert env["FROM_CONFIGMAP"] == "hello from a ConfigMap"
    assert env["FROM_SECRET"] == secret_values["password"]
    assert (env.get("CM_COLOR"), env.get("CM_SIZE")) == ("blue", "XL"), env

    files: dict[str, tuple[str, str]] = {}
    for line in kubectl.logs(name, "-c", "files").splitlines():
        path, mode, encoded = [*line.split(" "), ""][:3]
        files[path] = (mode, base64.b64decode(encoded).decode())
    labels = files.pop("/proj/labels", ("", ""))
    assert files == {
        "/cfg/conf/app.conf": ("440", "line one\nline two\n"),
        "/cfg/greeting": ("400", "hello from a ConfigMap"),
        "/sec/password": ("400", secret_values["password"]),
        "/sec/token.txt": ("400", "a file\n"),
        "/proj/from-cm/greeting": ("600", "hello from a ConfigMap"),
        # the downward API's values are the LOCAL pod's (the virtual kubelet resolves them)
        "/proj/name": ("444", name),
    }
    assert labels[0] == "444"
    assert labels[1].splitlines() == ['e2e="chain-real"'], labels


def test_init_containers_run_first_and_a_post_start_hook_runs_before_main_reads(
    chain: Chain, kubectl: Kubectl, submit: Submit, real_node: str
) -> None:
    """Two init containers append to an emptyDir, then the main container prints what
    they wrote and the file its postStart hook wrote. ``kubectl logs --all-containers``
    shows the init containers' output written first, then the main container's."""
    trail = {"name": "shared", "mountPath": "/shared"}
    inits = [
        container(c, f'echo "{c} ran" | tee -a /shared/trail', volumeMounts=[trail])
        for c in ("init-a", "init-b")
    ]
    main = container(
        "main",
        "cat /shared/trail; until [ -f /shared/hook ]; do sleep 0.1; done; cat /shared/hook; "
        "echo main done",
        volumeMounts=[trail],
        lifecycle={
            "postStart": {"exec": {"command": ["sh", "-c", "echo hook wrote this > /shared/hook"]}}
        },
    )
    name = submit(
        real_pod(
            manifests.unique_name("lifecycle"),
            [main],
            init_containers=inits,
            volumes=[{"name": "shared", "emptyDir": {}}],
        )
    )
    pod = ended_pod(kubectl, name, timeout=ENDED_SECONDS)
    assert status(pod)["phase"] == "Succeeded", status(pod)
    theirs = remote_ended(chain, pod)

    output = kubectl.logs(name, "--all-containers", "--prefix", "--timestamps")
    assert lines_in_time_order(output, name) == [
        ("init-a", "init-a ran"),
        ("init-b", "init-b ran"),
        ("main", "init-a ran"),
        ("main", "init-b ran"),
        ("main", "hook wrote this"),
        ("main", "main done"),
    ], output

    inits_local = status(pod).get("initContainerStatuses") or []
    assert [c["name"] for c in inits_local] == ["init-a", "init-b"]
    inits_remote = by_name(theirs, "initContainerStatuses")
    for init in inits_local:
        assert init["state"]["terminated"]["exitCode"] == 0, init
        assert init["state"]["terminated"]["reason"] == "Completed", init
        assert_as_remote(init, inits_remote[init["name"]])
    main_local = by_name(pod)["main"]
    assert_as_remote(main_local, by_name(theirs)["main"])
    # RFC 3339 in UTC, second precision: they compare as strings.
    a, b = (c["state"]["terminated"] for c in inits_local)
    assert a["finishedAt"] <= b["startedAt"] <= b["finishedAt"]
    assert b["finishedAt"] <= main_local["state"]["terminated"]["startedAt"]


def test_a_failing_container_fails_the_local_pod_with_the_remote_exit_codes(
    chain: Chain, kubectl: Kubectl, submit: Submit, real_node: str
) -> None:
    """One container exits 3 after the other exited 0 (restartPolicy Never): the local
    pod is Failed ("Error: 3"), each container with its remote exit code and times."""
    name = submit(
        real_pod(
            manifests.unique_name("failing"),
            [
                container("fails", 'echo "about to fail"; sleep 1; exit 3'),
                container("succeeds", "echo fine"),
            ],
        )
    )
    pod = ended_pod(kubectl, name, timeout=ENDED_SECONDS)
    theirs = remote_ended(chain, pod)
    assert status(theirs)["phase"] == "Failed", status(theirs)
    assert status(pod)["phase"] == "Failed", status(pod)
    assert status(pod).get("reason") == "Error: 3", status(pod)
    local, remote_statuses = by_name(pod), by_name(theirs)
    assert set(local) == {"fails", "succeeds"}
    assert remote_statuses["fails"]["state"]["terminated"]["exitCode"] == 3
    assert remote_statuses["succeeds"]["state"]["terminated"]["exitCode"] == 0
    for container_name, entry in local.items():
        assert state_of(entry) == "terminated", entry
        assert_as_remote(entry, remote_statuses[container_name])
    assert local["fails"]["state"]["terminated"]["reason"] == "Error: 3"
    assert kubectl.logs(name, "-c", "fails") == "about to fail\n"
    assert kubectl.logs(name, "-c", "succeeds") == "fine\n"


def test_probes_readiness_makes_the_pod_ready_and_a_failing_liveness_restarts_it(
    chain: Chain, kubectl: Kubectl, submit: Submit, real_node: str
) -> None:
    """Two pods at once. ``ready``: its readiness probe passes once the program has
    written a file (a few seconds in): the pod is Ready on both sides (locally as soon
    as it runs: the VK's rule). ``liveness``: its liveness probe fails from its 5th
    second on, so the remote kubelet kills and restarts it; the local pod stays
    Running and shows the remote container's current life (restart count, container
    id, state, last state: exit code 143 from the SIGTERM trap) and the previous
    container's log."""
    ready_name, live_name = submit.many(
        [
            real_pod(
                manifests.unique_name("ready"),
                [
                    container(
                        "main",
                        f"sleep 3; touch /tmp/ready; echo ready now; {STAYS}",
                        readinessProbe={
                            "exec": {"command": ["cat", "/tmp/ready"]},
                            "periodSeconds": 1,
                        },
                    )
                ],
                restart_policy="Always",
            ),
            real_pod(
                manifests.unique_name("liveness"),
                [
                    container(
                        "main",
                        f"echo alive at $(date +%s%N); {STAYS}",
                        livenessProbe={
                            "exec": {"command": ["false"]},
                            # each life lasts 5-7 s: longer than the VK's 5 s status
                            # poll, so the local pod shows every life while it runs
                            "initialDelaySeconds": 5,
                            "periodSeconds": 1,
                            "failureThreshold": 1,
                        },
                    )
                ],
                restart_policy="Always",
            ),
        ]
    )

    ready = running_pod(kubectl, ready_name)
    ready = (
        kubectl.wait_pod(
            ready_name,
            "condition Ready True",
            lambda p: any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status(p).get("conditions") or []
            ),
        )
        or {}
    )
    assert by_name(ready)["main"]["ready"] is True
    theirs = wait_for(
        f"the remote pod of {ready_name} to be ready (its readiness probe passed)",
        lambda: remote_pod(chain, ready),
        lambda p: by_name(p).get("main", {}).get("ready") is True,
        timeout=REMOTE_SECONDS,
        context=chain.diagnostics,
    )
    assert by_name(theirs)["main"]["restartCount"] == 0
    assert "ready now" in kubectl.logs(ready_name)

    restarted = (
        kubectl.wait_pod(
            live_name,
            "restartCount >= 1",
            lambda p: (
                status(p).get("phase") in ("Failed", "Succeeded")
                or (by_name(p).get("main") or {}).get("restartCount", 0) >= 1
            ),
            timeout=ENDED_SECONDS,
        )
        or {}
    )
    assert status(restarted)["phase"] == "Running", status(restarted)
    # The remote kubelet keeps restarting it (back-off 10 s, 20 s, ...): wait for a
    # moment when the local container status shows the remote one's current state.
    local_main, remote_main = wait_for(
        f"the local status of {live_name} to show the remote container's current life",
        lambda: (
            by_name(kubectl.get_pod(live_name))["main"],
            by_name(remote_pod(chain, restarted))["main"],
        ),
        lambda both: _life(both[0]) == _life(both[1]),
        timeout=ENDED_SECONDS,
        context=chain.diagnostics,
    )
    assert local_main["restartCount"] >= 1, local_main
    assert local_main["lastState"]["terminated"]["exitCode"] == 143, local_main
    assert local_main["lastState"]["terminated"]["reason"] == "Error", local_main
    assert state_of(remote_main) in ("running", "waiting"), remote_main
    assert status(kubectl.get_pod(live_name))["phase"] == "Running"
    previous = kubectl.logs(live_name, "--previous")
    assert previous.startswith("alive at "), previous
