"""The README's "try the chart" lines, run as written against the embedded control
plane: the chart's rendered manifests, with default values, are accepted by the real API
server, closed defaults included (sidecar mode, the NetworkPolicy, the journal's claim)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.localcluster import LocalCluster
from tests.localcluster.tools import HELM, KUBECTL, ToolError, ensure_tool

pytestmark = pytest.mark.controlplane

ROOT = Path(__file__).resolve().parents[2]


def readme_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- try-the-chart:")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None, "the try-the-chart block lost its code fence"
    return block.group(1).strip().splitlines()


@pytest.mark.timeout(900)  # the first run may build helm and kubectl
def test_the_readme_installs_the_chart_into_the_embedded_control_plane(
    control_plane: LocalCluster, tmp_path: Path
) -> None:
    try:
        tools = {tool.name: ensure_tool(tool) for tool in (HELM, KUBECTL)}
    except ToolError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"helm and kubectl are mandatory in CI: {exc}")
        pytest.skip(str(exc))
    lines = readme_lines()
    assert lines[0].startswith("export KUBECONFIG="), lines[0]
    # The README's .venv/bin/<tool> links: the same binaries, wherever this venv is.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, binary in tools.items():
        (bin_dir / name).symlink_to(binary)
    env = os.environ | {
        "KUBECONFIG": str(control_plane.kubeconfig),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    for line in lines[1:]:
        command = line.replace(".venv/bin/", f"{bin_dir}/")
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    assert "interlink-k8s-sidecar" in done.stdout  # the last line lists the Deployment

    deployment = control_plane.request(
        "GET", "/apis/apps/v1/namespaces/interlink/deployments/interlink-k8s-sidecar"
    )
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert sorted(containers) == ["interlink", "sidecar"], "sidecar mode is the default"
    sidecar = containers["sidecar"]
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    config = control_plane.request(
        "GET", "/api/v1/namespaces/interlink/configmaps/interlink-k8s-sidecar"
    )
    assert "[app]" in config["data"]["config.ini"], json.dumps(config["data"])[:200]
    assert "socket_address = unix://" in config["data"]["config.ini"]

    # The journal's claim, as the state volume.
    claim = control_plane.request(
        "GET", "/api/v1/namespaces/interlink/persistentvolumeclaims/interlink-k8s-sidecar-state"
    )
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    (state,) = [v for v in pod["volumes"] if v["name"] == "state"]
    assert state["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    # The NetworkPolicy, selecting the pod and admitting its two ports only.
    policy = control_plane.request(
        "GET",
        "/apis/networking.k8s.io/v1/namespaces/interlink/networkpolicies/interlink-k8s-sidecar",
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = sorted(rule["ports"][0]["port"] for rule in policy["spec"]["ingress"])
    assert ports == ["interlink", "ops"]
