"""Workloads that really run, on the real node, through the sidecar: what the program
sees (env, copied volumes byte for byte with their modes) and what the kubelet reports
about it (exit codes, restarts, probes, init failures) as ``/status`` answers interLink.

Four pods are created when the module starts and run side by side (their waits
overlap): ``show`` + ``fails`` (restartPolicy Never), ``flaky`` (OnFailure), the probe
pod (Always) and a pod whose init container fails (Never). All are deleted through
``/delete`` at the end, and their remote objects awaited gone.

fieldRef values, as a user sees them (the sidecar passes ``fieldRef`` on, except the
four it resolves itself): ``metadata.name``, ``metadata.namespace``, ``metadata.uid`` and
``spec.serviceAccountName`` are the *local* pod's (the sidecar writes them in: the remote pod is named
``<name>-<uid>`` in ``offloading-default``); labels are the local ones (copied);
``status.podIP``, ``status.hostIP`` and ``spec.nodeName`` are the *remote* pod's, resolved
by the remote kubelet: the address the program really has and can bind or advertise,
not the ``127.0.0.1`` the virtual kubelet shows as the local pod's IP.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests import podshapes
from tests.fixtures.sidecar_process import SidecarProcess
from tests.localcluster import LocalCluster
from tests.localcluster.realnode import NODE_NAME
from tests.realnode_pods import (
    HEX,
    RANDOM,
    Offloaded,
    container,
    container_status,
    create_all,
    delete_all,
    parse_hex_report,
    pod,
    secret_bytes,
    state_of,
)

pytestmark = [pytest.mark.controlplane, pytest.mark.realnode]

# --- what the program is given --------------------------------------------------------

ENV_CONFIG = podshapes.config_map("env-config", {"MODE": "fast", "LEVEL": "3"})
ENV_SECRET = secret_bytes("env-secret", {"TOKEN": b"t0k3n\n", "API_KEY": b"k-123"})
APP_CONFIG = podshapes.config_map(
    "app-config",
    {"app.yaml": "a: 1\nb: [x, y]\n", "no-newline": "no newline at the end", "unlisted": "x"},
    binaryData={"blob": base64.b64encode(b"\x00\x01\xfe\xff\x80 binary\n").decode()},
)
SECRET_BYTES = {
    "password": b"p@ss\nword\n",  # a trailing newline
    "binary": b"\xff\xfe\x00\x80\xc3(raw)\r\n",  # not UTF-8
    "empty": b"",
}
APP_SECRET = secret_bytes("app-secret", SECRET_BYTES)
SA_MOUNT = podshapes.SA_MOUNT
API_VOLUME, API_DATA = podshapes.kube_api_access()

QUOTED = "a \"quoted\" 'value' with $HOME, `ticks` and \\ backslash"
LITERAL_ENV = [
    {"name": "PLAIN", "value": "plain value"},
    {"name": "QUOTED", "value": QUOTED},
    # The kubelet expands $(VAR) of earlier variables, and $$ escapes it.
    {"name": "EXPANDED", "value": "$(PLAIN) and more"},
    {"name": "ESCAPED", "value": "$$(PLAIN)"},
]
REF_ENV = [
    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "env-config", "key": "MODE"}}},
    {"name": "MY_TOKEN", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "TOKEN"}}},
    {
        "name": "MISSING_OK",
        "valueFrom": {"configMapKeyRef": {"name": "not-sent", "key": "k", "optional": True}},
    },
]
FIELD_ENV = {
    "MY_NAME": "metadata.name",
    "MY_NAMESPACE": "metadata.namespace",
    "MY_UID": "metadata.uid",
    "MY_APP": "metadata.labels['app']",
    "MY_POD_IP": "status.podIP",
    "MY_HOST_IP": "status.hostIP",
    "MY_NODE": "spec.nodeName",
    "MY_ACCOUNT": "spec.serviceAccountName",
}
RESOURCE_ENV = {
    "name": "MY_MEMORY_LIMIT",
    "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
}
ENV_FROM = [
    {"configMapRef": {"name": "env-config"}, "prefix": "CFG_"},
    {"secretRef": {"name": "env-secret"}},
]
ENV_NAMES: list[str] = [
    *(str(v["name"]) for v in LITERAL_ENV + REF_ENV),
    *FIELD_ENV,
    "MY_MEMORY_LIMIT",
    "CFG_MODE",
    "CFG_LEVEL",
    "LEVEL",
    "TOKEN",
    "API_KEY",
]

# (path, mode it must have, bytes it must hold); b"<pod name>": the local pod's name.
FILES: list[tuple[str, str, bytes]] = [
    ("/etc/config/app.yaml", "640", b"a: 1\nb: [x, y]\n"),
    ("/etc/config/bin/blob", "600", b"\x00\x01\xfe\xff\x80 binary\n"),
    ("/etc/config/text/no-newline", "640", b"no newline at the end"),
    ("/etc/creds/password", "400", SECRET_BYTES["password"]),
    ("/etc/creds/binary", "400", SECRET_BYTES["binary"]),
    ("/etc/creds/empty", "400", b""),
    ("/etc/creds-items/deep/dir/binary.dat", "604", SECRET_BYTES["binary"]),
    ("/etc/envcfg/MODE", "644", b"fast"),
    ("/etc/envsec/TOKEN", "644", b"t0k3n\n"),
    (f"{SA_MOUNT}/token", "644", API_DATA["data"]["token"].encode()),
    (f"{SA_MOUNT}/ca.crt", "644", API_DATA["data"]["ca.crt"].encode()),
    (f"{SA_MOUNT}/namespace", "644", b"default"),
    ("/etc/podinfo/labels", "444", b'app="show"\n'),
    ("/etc/podinfo/deep/name", "400", b"<pod name>"),
]
DIRECTORIES = {
    "/etc/config": "app.yaml,bin,text",  # items only: "unlisted" is not there
    "/etc/creds": "binary,empty,password",
    "/etc/creds-items": "deep",
    SA_MOUNT: "ca.crt,namespace,token",
    "/etc/podinfo": "deep,labels",
}

SHOW_SCRIPT = (
    f"for n in {' '.join(ENV_NAMES)}; do\n"
    '  if eval "[ \\"\\${$n+set}\\" = set ]"; then\n'
    '    eval "v=\\"\\${$n}\\""\n'
    f'    printf \'env %s %s\\n\' "$n" "$(printf %s "$v" | {HEX})"\n'
    "  else printf 'env %s unset\\n' \"$n\"; fi\n"
    "done\n"
    f"for f in {' '.join(path for path, _, _ in FILES)}; do\n"
    f'  printf \'file %s %s %s\\n\' "$f" "$(stat -L -c %a "$f")" "$(cat "$f" | {HEX})"\n'
    "done\n"
    f"for d in {' '.join(DIRECTORIES)}; do\n"
    "  printf 'dir %s %s\\n' \"$d\" \"$(ls -A \"$d\" | grep -v '^[.][.]' | tr '\\n' , "
    "| sed 's/,$//')\"\n"
    "done\n"
    "echo done\n"
)


def show_pod() -> dict[str, Any]:
    """``show`` prints its env and files then exits 0; ``fails`` exits 3 (Never)."""
    mounts = [
        {"name": "config", "mountPath": "/etc/config"},
        {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
        {"name": "creds-items", "mountPath": "/etc/creds-items"},
        {"name": "envcfg", "mountPath": "/etc/envcfg"},
        {"name": "envsec", "mountPath": "/etc/envsec"},
        {"name": API_VOLUME["name"], "mountPath": SA_MOUNT, "readOnly": True},
        {"name": "podinfo", "mountPath": "/etc/podinfo"},
    ]
    env = [
        *LITERAL_ENV,
        *REF_ENV,
        *({"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in FIELD_ENV.items()),
        RESOURCE_ENV,
    ]
    volumes = [
        {
            "name": "config",
            "configMap": {
                "name": "app-config",
                "defaultMode": 0o640,
                "items": [
                    {"key": "app.yaml", "path": "app.yaml"},
                    {"key": "blob", "path": "bin/blob", "mode": 0o600},
                    {"key": "no-newline", "path": "text/no-newline"},
                ],
            },
        },
        {"name": "creds", "secret": {"secretName": "app-secret", "defaultMode": 0o400}},
        {
            "name": "creds-items",
            "secret": {
                "secretName": "app-secret",
                "items": [{"key": "binary", "path": "deep/dir/binary.dat", "mode": 0o604}],
            },
        },
        {"name": "envcfg", "configMap": {"name": "env-config"}},
        {"name": "envsec", "secret": {"secretName": "env-secret"}},
        API_VOLUME,
        {
            "name": "podinfo",
            "projected": {
                "defaultMode": 0o444,
                "sources": [
                    {
                        "downwardAPI": {
                            "items": [
                                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                {
                                    "path": "deep/name",
                                    "fieldRef": {"fieldPath": "metadata.name"},
                                    "mode": 0o400,
                                },
                            ]
                        }
                    }
                ],
            },
        },
    ]
    the_pod = pod(
        "show",
        {
            "containers": [
                container(
                    "show",
                    SHOW_SCRIPT,
                    env=env,
                    envFrom=ENV_FROM,
                    volumeMounts=mounts,
                    resources={"limits": {"memory": "64Mi"}},
                ),
                container("fails", "echo about to fail; exit 3"),
            ],
            "volumes": volumes,
            # does not exist remotely (the remote pod runs without one), yet the
            # program reads this name, not the remote default's
            "serviceAccountName": "builder",
        },
    )
    the_pod["metadata"]["labels"] = {"app": "show"}
    podinfo = {
        "metadata": {"name": "podinfo", "creationTimestamp": None},
        "data": {"labels": 'app="show"\n', "deep/name": the_pod["metadata"]["name"]},
    }
    sent = {
        "configMaps": [APP_CONFIG, ENV_CONFIG],
        "secrets": [APP_SECRET, ENV_SECRET],
        "projectedvolumemaps": [API_DATA, podinfo],
    }
    return podshapes.body(the_pod, {"show": sent})


def flaky_pod() -> dict[str, Any]:
    """OnFailure: ``flaky`` fails (exit 4) on its first run and succeeds on its second."""
    script = (
        f'echo "run {RANDOM}"\n'
        'if [ -e /scratch/failed ]; then echo "second run: success"; exit 0; fi\n'
        'touch /scratch/failed; echo "first run: failing"; exit 4\n'
    )
    return podshapes.body(
        pod(
            "flaky",
            {
                "restartPolicy": "OnFailure",
                "containers": [
                    container(
                        "flaky", script, volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]
                    )
                ],
                "volumes": [{"name": "scratch", "emptyDir": {}}],
            },
        )
    )


def probes_pod() -> dict[str, Any]:
    """Always: two containers whose liveness probe fails (exec ``false``; httpGet to a
    port nothing listens on), one whose probe passes (busybox httpd), one that crashes."""

    def liveness(handler: dict[str, Any]) -> dict[str, Any]:
        return {**handler, "periodSeconds": 1, "failureThreshold": 1}

    serve = (
        "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
    )
    return podshapes.body(
        pod(
            "probes",
            {
                "restartPolicy": "Always",
                "containers": [
                    container(
                        "exec-probe",
                        "exec sleep 3600",
                        livenessProbe=liveness({"exec": {"command": ["false"]}}),
                    ),
                    container(
                        "http-probe",
                        "exec sleep 3600",
                        livenessProbe=liveness({"httpGet": {"path": "/", "port": 8081}}),
                    ),
                    container(
                        "healthy",
                        serve,
                        livenessProbe=liveness({"httpGet": {"path": "/", "port": 8080}}),
                    ),
                    container("crasher", f'echo "run {RANDOM}"; exit 2'),
                ],
            },
        )
    )


def init_fails_pod() -> dict[str, Any]:
    """Never: init container ``setup`` exits 7, so ``main`` must never start."""
    return podshapes.body(
        pod(
            "initfail",
            {
                "initContainers": [container("setup", "echo setup ran; exit 7")],
                "containers": [container("main", "echo main ran")],
            },
        )
    )


@pytest.fixture(scope="module")
def pods(
    real_node_sidecar: SidecarProcess, control_plane: LocalCluster
) -> Iterator[dict[str, Offloaded]]:
    made = {
        "show": Offloaded(real_node_sidecar, show_pod()),
        "flaky": Offloaded(real_node_sidecar, flaky_pod()),
        "probes": Offloaded(real_node_sidecar, probes_pod()),
        "initfail": Offloaded(real_node_sidecar, init_fails_pod()),
    }
    try:
        asyncio.run(create_all(made.values()))
        yield made
    finally:
        asyncio.run(delete_all(control_plane, made.values()))


def terminated(status: dict[str, Any], name: str, *, init: bool = False) -> dict[str, Any]:
    detail: dict[str, Any] = container_status(status, name, init=init)["state"]["terminated"]
    return detail


async def show_output(show: Offloaded) -> str:
    await show.wait("show to exit", lambda s: state_of(s, "show") == "terminated")
    text = await show.log_text("show")
    assert text.endswith("done\n"), text
    return text


# --- env ---------------------------------------------------------------------------


async def test_the_program_sees_env_from_configmaps_secrets_fieldrefs_and_literals(
    pods: dict[str, Offloaded], control_plane: LocalCluster
) -> None:
    show = pods["show"]
    env = parse_hex_report(await show_output(show), "env")
    remote = show.remote_pod(control_plane)
    assert control_plane.real_node is not None
    assert env == {
        # literals, with the kubelet's $(VAR) expansion and $$ escape
        "PLAIN": "plain value",
        "QUOTED": QUOTED,
        "EXPANDED": "plain value and more",
        "ESCAPED": "$(PLAIN)",
        # configMapKeyRef / secretKeyRef to the copies (a trailing newline kept)
        "MODE": "fast",
        "MY_TOKEN": "t0k3n\n",
        # optional, to an object interLink did not send: unset, as locally
        "MISSING_OK": None,
        # envFrom: with the prefix; the secret's keys as they are
        "CFG_MODE": "fast",
        "CFG_LEVEL": "3",
        "LEVEL": None,
        "TOKEN": "t0k3n\n",
        "API_KEY": "k-123",
        # the local pod's identity (the remote pod is named and placed otherwise) ...
        "MY_NAME": show.name,
        "MY_NAMESPACE": "default",
        "MY_UID": show.uid,
        "MY_APP": "show",
        "MY_ACCOUNT": "builder",
        # ... and where it really runs: the remote pod's IP, node and node IP
        "MY_POD_IP": remote["status"]["podIP"],
        "MY_HOST_IP": control_plane.real_node.node_ip,
        "MY_NODE": NODE_NAME,
        "MY_MEMORY_LIMIT": "64",
    }
    assert remote["metadata"]["name"] != show.name
    assert remote["metadata"]["namespace"] != "default"
    assert env["MY_POD_IP"] != show.pod["status"]["podIP"]  # 127.0.0.1 as the VK sent it


# --- volumes -----------------------------------------------------------------------


async def test_the_program_reads_copied_volumes_byte_for_byte_with_their_modes(
    pods: dict[str, Offloaded],
) -> None:
    show = pods["show"]
    text = await show_output(show)
    files = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if parts[0] == "file":
            assert len(parts) == 4, line
            files[parts[1]] = (parts[2], bytes.fromhex(parts[3]))
    expected = {
        path: (mode, show.name.encode() if content == b"<pod name>" else content)
        for path, mode, content in FILES
    }
    assert files == expected
    listed = dict(line.split(" ")[1:] for line in text.splitlines() if line.startswith("dir "))
    assert listed == DIRECTORIES


# --- exit codes and restarts -------------------------------------------------------


async def test_exit_codes_and_reasons_of_a_never_pod(pods: dict[str, Offloaded]) -> None:
    show = pods["show"]
    status = await show.wait(
        "both containers to exit",
        lambda s: state_of(s, "show") == state_of(s, "fails") == "terminated",
    )
    done, failed = terminated(status, "show"), terminated(status, "fails")
    assert (done["exitCode"], done["reason"]) == (0, "Completed")
    assert (failed["exitCode"], failed["reason"]) == (3, "Error")
    for detail in (done, failed):
        # RFC 3339 with a zone, or interLink's decoder fails the whole answer
        assert detail["startedAt"].endswith("Z") and detail["finishedAt"].endswith("Z")
        assert detail["startedAt"] <= detail["finishedAt"]
        assert detail["containerID"].startswith("containerd://")
    for name in ("show", "fails"):
        entry = container_status(status, name)
        assert entry["restartCount"] == 0 and "lastState" not in entry
    assert status["initContainers"] == []
    assert await show.log_text("fails") == "about to fail\n"


async def test_on_failure_restarts_a_failed_container_until_it_succeeds(
    pods: dict[str, Offloaded],
) -> None:
    """The first ``terminated`` state /status reports is the final one: the VK makes
    an all-terminated answer final, so the exit 4 before the restart must not show."""
    flaky = pods["flaky"]
    status = await flaky.wait("flaky to end", lambda s: state_of(s, "flaky") == "terminated")
    entry = container_status(status, "flaky")
    assert (entry["state"]["terminated"]["exitCode"], entry["state"]["terminated"]["reason"]) == (
        0,
        "Completed",
    )
    assert entry["restartCount"] == 1
    last = entry["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (4, "Error")
    assert last["finishedAt"] <= entry["state"]["terminated"]["startedAt"]
    runs = (await flaky.log_text("flaky")).splitlines()
    assert runs[1:] == ["second run: success"]
    assert runs[0].startswith("run ")
    # Both instances have ended, and the kubelet keeps one dead container per name: the
    # first instance is gone. Its answer (HTTP 200, the error as the body, as kubectl
    # shows it) comes through unchanged. Previous logs of a restarted container that
    # still runs: test_realnode_logs.py.
    previous = await flaky.log_text("flaky", Previous=True)
    assert previous.startswith("unable to retrieve container logs for containerd://"), previous


# --- liveness probes (and a crash loop, restartPolicy Always) -------------------------


async def test_failing_liveness_probes_restart_containers(pods: dict[str, Offloaded]) -> None:
    probes = pods["probes"]
    seen_states: dict[str, set[str]] = {}

    def note(status: dict[str, Any]) -> dict[str, int]:
        counts = {}
        for entry in status["containers"]:
            seen_states.setdefault(entry["name"], set()).add(next(iter(entry["state"])))
            counts[entry["name"]] = entry.get("restartCount", 0)
        return counts

    first = await probes.wait(
        "every failing container to restart once",
        lambda s: all(note(s)[name] >= 1 for name in ("exec-probe", "http-probe", "crasher")),
    )
    once = note(first)
    final = await probes.wait(
        "the restart counts to grow",
        lambda s: all(
            note(s)[name] > once[name] for name in ("exec-probe", "http-probe", "crasher")
        ),
        timeout=120,
    )
    for name in ("exec-probe", "http-probe"):
        entry = container_status(final, name)
        last = entry["lastState"]["terminated"]
        # killed by the kubelet: sleep as PID 1 ignores SIGTERM, SIGKILL after the grace
        assert (last["exitCode"], last["reason"]) == (137, "Error"), entry
    crasher = container_status(final, "crasher")
    assert crasher["lastState"]["terminated"]["exitCode"] == 2
    healthy = container_status(final, "healthy")
    assert healthy.get("restartCount", 0) == 0 and "running" in healthy["state"], healthy
    # A pod that restarts its containers never shows a container terminated to interLink.
    assert all("terminated" not in states for states in seen_states.values()), seen_states


# --- a failing init container -------------------------------------------------------


async def test_a_failing_init_container_fails_the_pod_and_main_never_starts(
    pods: dict[str, Offloaded], control_plane: LocalCluster
) -> None:
    initfail = pods["initfail"]
    status = await initfail.wait("the pod to end", lambda s: state_of(s, "main") == "terminated")
    setup = terminated(status, "setup", init=True)
    assert (setup["exitCode"], setup["reason"]) == (7, "Error")
    # main: reported terminated (or the VK would keep the pod Pending) with the init
    # container's code, and said never to have run
    main = container_status(status, "main")
    ended = main["state"]["terminated"]
    assert (ended["exitCode"], ended["reason"]) == (7, "InitContainerFailed")
    assert ended["message"].endswith("this container never ran"), ended
    assert "startedAt" not in ended
    assert main.get("restartCount", 0) == 0 and not main.get("started")
    remote = initfail.remote_pod(control_plane)
    assert remote["status"]["phase"] == "Failed"
    [remote_main] = remote["status"]["containerStatuses"]
    assert list(remote_main["state"]) == ["waiting"] and not remote_main.get("lastState")
    assert await initfail.log_text("setup") == "setup ran\n"
    # Its log: the kubelet refuses it ("waiting to start: PodInitializing"); to interLink
    # that is an empty log, and a follow ends at once (the pod has ended: it never runs).
    assert await initfail.logs("main") == (200, b"")
    assert await initfail.logs("main", Follow=True) == (200, b"")
