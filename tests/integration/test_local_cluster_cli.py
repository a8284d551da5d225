"""``make run``'s command, ``python -m tests.localcluster`` from the repository root, as a
newcomer runs it; and the installed ``interlink-k8s-sidecar --local-cluster``, which
says where that tool went."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.deadlines import scaled
from tests.integration.test_process import alive, descendants
from tests.localcluster.cluster import free_port

pytestmark = pytest.mark.controlplane
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "manifests" / "examples" / "create-hello.json"


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if marker in line:
                return lines
    raise AssertionError(f"no {marker!r} within {timeout} s; output so far:\n" + "\n".join(lines))


def make_run(*argv: str) -> tuple[subprocess.Popen[str], int]:
    """``python -m tests.localcluster *argv`` from the repository root, as ``make run``
    runs it, on a free plugin port and ops port; the process and the plugin port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CONFIG_FILE_PATH"}
    env |= {"APP_SOCKET_PORT": str(port), "APP_OPS_PORT": str(free_port())}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.localcluster", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    )
    return process, port


def curl(port: int, method: str, path: str, sample: Path) -> str:
    """What the README tells a newcomer to curl: ``sample`` as the JSON body."""
    return subprocess.run(
        [
            *("curl", "-sS", "-X", method, f"http://127.0.0.1:{port}{path}"),
            *("-H", "Content-Type: application/json", "--data-binary", f"@{sample}"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_local_cluster_comes_up_serves_and_stops_cleanly(
    control_plane: object, tmp_path: Path
) -> None:
    # control_plane: the binaries are built (or the test fails in CI) before this runs.
    process, port = make_run("--dir", str(tmp_path / "cluster"))
    try:
        lines = read_until(process, "[local-cluster] ready", timeout=120)
        output = "\n".join(lines)
        assert f"plugin API: http://127.0.0.1:{port}" in output
        kubeconfig = next(line.split("kubeconfig: ")[1] for line in lines if "kubeconfig: " in line)
        assert Path(kubeconfig).is_file()

        created = json.loads(curl(port, "POST", "/create", SAMPLE))
        assert created["PodUID"] == "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
        assert created["PodJID"]

        children = descendants(process.pid)
        assert len(children) >= 5  # etcd, apiserver, controller-manager, scheduler, kwok
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert not [pid for pid in children if alive(pid)]
        assert "[local-cluster] control plane stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_the_installed_sidecar_refuses_local_cluster_with_a_pointer(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("interlink-k8s-sidecar")
    for argv in (["--local-cluster"], ["--local-cluster-dir", "x"]):
        result = subprocess.run(
            [str(script), *argv],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stderr
        assert "development tool" in result.stderr and "make run" in result.stderr
        assert "unrecognized" not in result.stderr
        assert len(result.stderr.splitlines()) <= 2  # usage and one line


@pytest.mark.realnode
def test_make_run_with_a_real_node_runs_the_readme_pod_for_real(real_node: object) -> None:
    # real_node: the session has one, so one can run here (else this skips with why).
    workdir = Path(tempfile.mkdtemp(prefix="rn-"))  # short: the kubelet's socket paths
    process, port = make_run("--real-node", "--dir", str(workdir))
    try:
        output = "\n".join(read_until(process, "[local-cluster] ready", timeout=scaled(120)))
        assert "real node real-node on 10.213." in output

        examples = REPO / "manifests" / "examples"
        created = json.loads(
            curl(port, "POST", "/create", examples / "create-hello-real-node.json")
        )
        assert created["PodUID"] == "0f9d3c1e-2b7a-4a7e-9d65-1c2b3a4d5e6f"
        # The README's getLogs: the container's real output (its hostname is the pod's name)
        deadline = time.monotonic() + scaled(60)
        while "hello world" not in (
            log := curl(port, "GET", "/getLogs", examples / "logs-hello.json")
        ):
            assert time.monotonic() < deadline, log
            time.sleep(0.2)  # polling a condition with a deadline
        assert log.startswith("hello world from hello-world"), log
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=scaled(60)) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)
