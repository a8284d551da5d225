"""The sidecar as a process: both listeners, a clean SIGTERM, configuration errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deadlines import scaled
from tests.fixtures.sidecar_process import StartSidecar
from tests.integration.plugin_client import call


def descendants(pid: int) -> set[int]:
    """Every live process whose parent chain leads to ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may contain spaces: ppid is the 2nd field after ')'.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.controlplane
async def test_answers_on_unix_socket_and_tcp(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar()
    assert oct(sidecar.unix_path.stat().st_mode & 0o777) == "0o660"
    for via_unix in (True, False):
        code, body = await call(sidecar, "GET", "/status", [], via_unix=via_unix)
        assert code == 200, body
        answer = json.loads(body)
        assert answer["status"] == "ok"
        # Two kwok nodes of 32 cpu, 128Gi, 110 pods each.
        assert answer["resources"] == {"cpu": "64", "memory": "262144Mi", "pods": "220"}


@pytest.mark.controlplane
def test_sigterm_exits_zero_in_time_and_leaves_nothing(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar()
    children = descendants(sidecar.process.pid)
    started = time.monotonic()
    sidecar.process.send_signal(signal.SIGTERM)
    code = sidecar.process.wait(timeout=scaled(30))
    elapsed = time.monotonic() - started
    assert code == 0, sidecar.log()
    assert elapsed < 30
    assert not [pid for pid in children if alive(pid)]
    assert "stop requested" in sidecar.log()


def run_sidecar(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith(("APP_", "LOG_", "K8S_"))},
    )


def test_two_bad_keys_are_both_reported_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    config.write_text(
        "[app]\nsocket_address = unix:///tmp/x.sock\nsocket_port = not-a-port\n"
        "[offloading]\nnode_tolerations = {oops\n"
    )
    result = run_sidecar(config)
    assert result.returncode == 2
    assert "2 configuration problem(s)" in result.stderr
    assert "app.socket_port" in result.stderr
    assert "offloading.node_tolerations" in result.stderr


def test_unreadable_kubeconfig_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    config.write_text(
        f"[app]\nsocket_address = unix://{tmp_path}/p.sock\nops_port = 0\n"
        f"state_dir = {tmp_path}/state\n"
        f"[k8s]\nkubeconfig_path = {tmp_path}/missing.yaml\n"
    )
    result = run_sidecar(config)
    assert result.returncode == 2
    assert "k8s.kubeconfig_path" in result.stderr


def test_check_config_validates_without_starting(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    config.write_text("[app]\nsocket_address = unix:///tmp/x.sock\n")
    result = run_sidecar(config, "--check-config")
    assert result.returncode == 0
    assert "configuration OK" in result.stdout
