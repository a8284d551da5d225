"""A real node leaves the host as it found it: after a clean stop, and after a crash
(SIGKILL of ``python -m tests.localcluster --real-node``, what ``make run REAL_NODE=1``
runs) once ``python -m tests.localcluster.realnode clean`` or a new real-node start has
run.

Each test first checks that its pod really changed the host (tmpfs volume mounts, the
overlay rootfs, cgroups with the container in them, a network namespace with the pod IP
and a veth on the slot's bridge, runc state, the shim's socket, libcni's cache, the CRI
log link, the kubelet's sysctls; after the crash, the shim and the container still
running) and that ``snapshot.snapshot`` of its slot sees them, so the comparison can fail.
After the stop or the clean, the pod's own entries in the shared directories are gone at
once (whether or not another slot keeps those directories), its ledger is gone, and
``snapshot.snapshot()`` is back to the one taken before (polled: killed processes and their
cgroups go asynchronously).

Other real nodes (other test sessions, in other slots) may run meanwhile:
``snapshot.snapshot`` leaves out what belongs to any other slot with a ledger and reports
the shared state as the last slot will leave it, and the crash test holds the crashed
slot's lock while it looks at the leftovers, so that no other run's start cleans them
(or the last other slot restores the shared state) under its feet.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deadlines import scaled
from tests.integration.test_process import alive
from tests.localcluster import LocalCluster, LocalClusterError, ensure_binaries
from tests.localcluster.binaries import Binaries
from tests.localcluster.cluster import free_port
from tests.localcluster.realnode import (
    BUSYBOX_IMAGE,
    NODE_LABEL,
    host,
    hostops,
    snapshot,
    toleration,
    unavailable_reason,
    wanted,
)

pytestmark = [pytest.mark.controlplane, pytest.mark.realnode]
REPO = Path(__file__).resolve().parents[2]
KUBELET_SYSCTLS = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}
"""What the kubelet writes at its start (protectKernelDefaults: false)."""
CHANGED_BY_A_POD = {"mounts", "cgroups", "links", "netns", "entries", "processes"}
"""The snapshot's keys a running pod on the real node changes, whatever else runs."""

Request = Callable[..., Any]


@pytest.fixture(scope="module")
def binaries() -> Binaries:
    try:
        found = ensure_binaries()
        on, why = wanted(found.kubelet)
    except LocalClusterError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the control plane is mandatory in CI: {exc}")
        pytest.skip(f"no real node here: {exc}")
    reason = unavailable_reason(found.kubelet)
    if reason is not None or not on:
        pytest.skip(f"no real node here: {reason or why}")
    return found


def test_a_clean_stop_leaves_the_host_as_it_found_it(
    binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> None:
    before = snapshot.snapshot()
    cluster = LocalCluster(tmp_path_factory.mktemp("rn"), binaries, nodes=0, real_node=True)
    try:
        cluster.start()
        assert cluster.real_node is not None and cluster.real_node.slot is not None
        number = cluster.real_node.slot.number
        workdir = cluster.real_node.workdir
        cluster.request(
            "POST",
            "/api/v1/namespaces/default/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds"},
                "stringData": {"token": "t"},
            },
        )
        status = _run_pod(cluster.request, "host-effects", secret="creds")
        uid, container = status["uid"], status["container"]

        volumes = workdir / "kubelet" / "pods" / uid / "volumes"
        assert (volumes / "kubernetes.io~secret" / "creds").is_mount()
        projected = list((volumes / "kubernetes.io~projected").glob("kube-api-access-*"))
        assert projected and all(p.is_mount() for p in projected)
        entries = _assert_pod_changed_the_host(before, number, status)
        links = list(host.CONTAINER_LOG_LINKS.glob(f"host-effects_default_c-{container}.log"))
        assert links and Path(os.readlink(links[0])).is_relative_to(workdir / "pod-logs")
    finally:
        cluster.stop()
    # Gone at once, whether or not another slot keeps the shared directories.
    assert not [p for p in [*entries, workdir] if os.path.lexists(p)]
    _assert_restored(before, workdir)


@pytest.mark.parametrize("cleaner", ["clean command", "new start"])
def test_after_a_crash_the_leftovers_are_undone(
    binaries: Binaries, tmp_path_factory: pytest.TempPathFactory, cleaner: str
) -> None:
    before = snapshot.snapshot()
    # Short paths: the kubelet's sockets under its root dir have at most 107 bytes.
    tmp_path = tmp_path_factory.mktemp("rn")
    run = tmp_path / "crashed"
    log = tmp_path / "local-cluster.log"
    config = tmp_path / "config.ini"
    config.write_text("")  # not private/config.ini, whatever this checkout has
    environ = {k: v for k, v in os.environ.items() if k != "CONFIG_FILE_PATH"} | {
        "PYTHONPATH": str(REPO),
        "APP_SOCKET_PORT": str(free_port()),
        "APP_OPS_PORT": str(free_port()),
    }
    argv = [sys.executable, "-m", "tests.localcluster", "--real-node", "--config", str(config)]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*argv, "--dir", str(run)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=REPO,
        )
    try:
        ready = _wait_for_line(process, log, "[local-cluster] ready", timeout=scaled(120))
        number = int(re.search(r"on 10\.213\.(\d+)\.1:", ready)[1])  # type: ignore[index]
        request = _admin(run)
        status = _run_pod(request, "crash-effects")
        socket = str(host.STATE_ROOT / f"slot-{number}" / "containerd.sock")
        shims = _pids_with(socket)
        assert shims, f"no shim of {socket} runs"
        control_plane = _pids_with(str(run))
        assert control_plane

        process.send_signal(signal.SIGKILL)
        process.wait(timeout=scaled(10))
        with _holding(number):
            # The kubelet, containerd and the control plane get SIGKILL from the
            # kernel (PR_SET_PDEATHSIG); the shim and the container live on.
            _poll(
                "the crashed run's kubelet, containerd and control plane to die",
                lambda: not [pid for pid in control_plane if alive(pid)],
            )
            assert all(alive(pid) for pid in shims)
            assert (host.STATE_ROOT / f"slot-{number}.json").exists()
            pod_volumes = run / "realnode" / "kubelet" / "pods" / status["uid"] / "volumes"
            projected = list((pod_volumes / "kubernetes.io~projected").glob("*"))
            assert projected and all(p.is_mount() for p in projected)
            entries = _assert_pod_changed_the_host(before, number, status)

        if cleaner == "clean command":
            cleaned = subprocess.run(
                [sys.executable, "-m", "tests.localcluster.realnode", "clean"],
                capture_output=True,
                text=True,
                env=environ,
                cwd=REPO,
                timeout=scaled(60),
                check=False,
            )
            assert cleaned.returncode == 0, cleaned.stderr
            listed = re.search(r"cleaned slot\(s\): \[([\d, ]*)\]", cleaned.stdout)
            assert listed and number in json.loads(f"[{listed[1]}]"), cleaned.stdout
        else:
            with LocalCluster(tmp_path / "next", binaries, nodes=0, real_node=True) as cluster:
                # Its start undid the crashed run's slot before taking one.
                assert not (run / "realnode").exists()
                assert not [pid for pid in shims if alive(pid)]
                assert not [p for p in hostops.mount_points() if p.is_relative_to(run)]
                assert not [p for p in entries if os.path.lexists(p)]
                assert cluster.real_node is not None
        assert not [pid for pid in shims if alive(pid)]
        assert not [p for p in [*entries, run / "realnode"] if os.path.lexists(p)]
        _assert_restored(before, run)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        host.clean_leftovers()  # whatever a failure above left


# --- helpers ---------------------------------------------------------------------------


def _run_pod(request: Request, name: str, *, secret: str | None = None) -> dict[str, Any]:
    """Create a pod that keeps running on the real node; once it runs, its uid, podIP
    and container id."""
    volumes = [{"name": "creds", "secret": {"secretName": secret}}] if secret else []
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {NODE_LABEL[0]: NODE_LABEL[1]},
            "tolerations": [toleration()],
            "terminationGracePeriodSeconds": 0,
            "volumes": volumes,
            "containers": [
                {
                    "name": "c",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "echo started; exec sleep 3600"],
                    "volumeMounts": [{"name": "creds", "mountPath": "/creds"}] if secret else [],
                }
            ],
        },
    }
    request("POST", "/api/v1/namespaces/default/pods", pod)
    path = f"/api/v1/namespaces/default/pods/{name}"

    def running() -> bool:
        status = request("GET", path)["status"]
        states = [c.get("state", {}) for c in status.get("containerStatuses") or []]
        return bool(states) and all("running" in s for s in states)

    _poll(f"pod {name} to run", running, timeout=60)
    found = request("GET", path)
    return {
        "uid": found["metadata"]["uid"],
        "ip": found["status"]["podIP"],
        "container": found["status"]["containerStatuses"][0]["containerID"].split("://")[1],
    }


def _assert_pod_changed_the_host(
    before: dict[str, Any], number: int, pod: dict[str, Any]
) -> list[Path]:
    """The pod's host changes are there, and the snapshot of its slot sees them; its
    entries in the shared directories (network namespace, runc state, shim socket,
    libcni cache, log links), which must be gone after the release or the clean."""
    assert pod["ip"].startswith(f"10.213.{number}.")
    cgroup = hostops.CGROUP_FS / "pids" / f"interlink-realnode-{number}"
    assert [p for p in cgroup.rglob("cgroup.procs") if p.read_text().split()], "no process"
    links = _ip_json("link", "show")
    assert [link for link in links if link.get("master") == f"ilsrn{number}"], "no veth"
    netns = [n for n in hostops.NETNS_DIR.glob("cni-*") if pod["ip"] in _addresses(n.name)]
    assert netns, f"no network namespace has {pod['ip']}"
    tasks = host.STATE_ROOT / f"slot-{number}" / "containerd" / "io.containerd.runtime.v2.task"
    assert (tasks / "k8s.io" / pod["container"] / "rootfs").is_mount()
    bundles = list((tasks / "k8s.io").iterdir())  # the sandbox's and the container's
    assert len(bundles) == 2, bundles
    runc = [Path("/run/containerd/runc/k8s.io", b.name) for b in bundles]
    sockets = [Path((b / "address").read_text().removeprefix("unix://")) for b in bundles]
    cache = [p for p in host.CNI_CACHE.iterdir() if any(f"-{b.name}-" in p.name for b in bundles)]
    assert len(cache) == 2, cache  # the pod's interface and its loopback
    logs = [
        link
        for link in host.CONTAINER_LOG_LINKS.iterdir()
        if f"-{pod['container']}.log" in link.name
    ]
    entries = [*netns, *runc, *sockets, *cache, *logs]
    assert all(os.path.lexists(p) for p in entries) and len(logs) == 1, entries
    for name, value in KUBELET_SYSCTLS.items():
        assert Path("/proc/sys", name).read_text().strip() == value
    during = snapshot.snapshot(slot=number)
    changed = {key for key in before if before[key] != during[key]}
    assert changed >= CHANGED_BY_A_POD, f"the snapshot missed {CHANGED_BY_A_POD - changed}"
    return entries


def _assert_restored(before: dict[str, Any], run: Path, *, timeout: float = 30) -> None:
    """As ``assert_host_restored``, for the real node of the run in ``run``: its ledger is
    gone (else its leftovers would be out of view), and then the host is as ``before``.
    Its slot number may well belong to another run by now."""
    ledgers = [p for p in host.STATE_ROOT.glob("slot-*.json") if str(run) in _read(p)]
    assert not ledgers, f"{ledgers} still there after the release"
    deadline = time.monotonic() + scaled(timeout)
    while (after := snapshot.snapshot()) != before and time.monotonic() < deadline:
        time.sleep(0.2)  # polling a condition with a deadline
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"the real node left the host changed: {changed}"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # released meanwhile
        return ""


@contextlib.contextmanager
def _holding(number: int) -> Iterator[None]:
    """Hold slot ``number``'s lock as its run did: no other run's start cleans it (or
    restores the shared state) while the test looks at the crash's leftovers."""
    with (host.STATE_ROOT / f"slot-{number}.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.fail(f"slot {number} was taken at once by another run after the crash")
        yield


def _admin(workdir: Path) -> Request:
    """Requests as the crashed run's admin (its admin.kubeconfig: server, token, CA)."""
    config = json.loads((workdir / "admin.kubeconfig").read_text())
    server = config["clusters"][0]["cluster"]["server"]
    token = config["users"][0]["user"]["token"]
    context = ssl.create_default_context(cafile=str(workdir / "pki" / "ca.crt"))

    def request(method: str, path: str, body: Any = None) -> Any:
        sent = urllib.request.Request(  # https to our own server
            server + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(sent, timeout=10, context=context) as response:
            return json.loads(response.read())

    return request


def _wait_for_line(
    process: subprocess.Popen[bytes], log: Path, marker: str, *, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        text = log.read_text(errors="replace")
        if marker in text:
            return text
        time.sleep(0.2)  # polling a condition with a deadline
    raise AssertionError(f"no {marker!r} (exit {process.poll()}):\n{log.read_text()[-3000:]}")


def _pids_with(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if marker in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                pids.append(int(proc.name))
    return [pid for pid in pids if pid != os.getpid()]


def _ip_json(*argv: str) -> list[dict[str, Any]]:
    done = subprocess.run(["ip", "-j", *argv], capture_output=True, text=True, check=True)
    found: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return found


def _addresses(netns: str) -> set[str]:
    return {a["local"] for i in _ip_json("-n", netns, "addr") for a in i.get("addr_info", [])}


def _poll(what: str, check: Callable[[], bool], *, timeout: float = 10) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # polling a condition with a deadline
