"""``python -m tests.localcluster [--config FILE] [--dir DIR] [--real-node]``: what
``make run`` runs.

Starts the embedded control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok nodes; the binaries are built on first use) on 127.0.0.1 and the
sidecar against it, prints the kubeconfig path and the plugin URL, and stops everything
on Ctrl-C (SIGINT) or SIGTERM. Run it from the repository root: it is development
tooling, not part of the package (the installed ``interlink-k8s-sidecar`` refuses
``--local-cluster``). ``python -m tests.localcluster.build`` only builds (or finds) the
binaries.

The configuration is read as the sidecar reads it (``--config``, else
``$CONFIG_FILE_PATH``, else ``private/config.ini`` if present, and ``SECTION_KEY``
environment variables); only the listen address (http://127.0.0.1:4000), the
kubeconfig (the control plane's) and the state directory (``<DIR>/state``) have other
defaults. With ``--real-node`` (``make run REAL_NODE=1``; root, Debian's
containerd, runc, containernetworking-plugins and busybox-static) the cluster also gets a
real node, and offloaded pods go there by default (``offloading.node_selector`` and
``node_tolerations`` point at it): their containers really run, with the local image
``interlink-test.local/busybox:1.35`` and ``imagePullPolicy: Never``. Exit status: 0 after a clean stop, 1 when the control plane could not start or
a root task ended on its own, 2 for any configuration problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sidecar import app, logconfig
from sidecar.__main__ import config_path, load_or_exit
from tests.localcluster import realnode
from tests.localcluster.binaries import LocalClusterError, ensure_binaries
from tests.localcluster.cluster import LocalCluster

PLUGIN_PORT = "4000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.localcluster",
        description="Start an embedded control plane with kwok nodes and the sidecar "
        "offloading to it (builds the binaries on first use).",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config.ini to read (default: $CONFIG_FILE_PATH, else private/config.ini if present)",
    )
    parser.add_argument(
        "--dir",
        "--local-cluster-dir",
        dest="dir",
        metavar="DIR",
        help="where the control plane keeps its state (default: a new temporary directory)",
    )
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="add a real node (kubelet + containerd; root) and offload pods to it",
    )
    return parser


def _say(line: str) -> None:
    print(f"[local-cluster] {line}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = config_path(args.config)
    local_defaults = {
        "APP_SOCKET_ADDRESS": "http://127.0.0.1",
        "APP_SOCKET_PORT": PLUGIN_PORT,
        "K8S_KUBECONFIG_PATH": "",
    }
    load_or_exit(path, local_defaults)  # report configuration problems before a long start
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="interlink-local-cluster-"))
    # Only the flag decides (the test suite's LOCAL_CLUSTER_REAL_NODE=auto must not
    # leak into a `make run` started by a test).
    environ = dict(os.environ) | {realnode.ENV: "1" if args.real_node else "0"}
    try:
        binaries = ensure_binaries(progress=_say)
        real_node, why = realnode.wanted(binaries.kubelet, environ)
        _say(f"real node: {why}")
        cluster = LocalCluster(workdir, binaries, progress=_say, real_node=real_node)
        cluster.start()
    except LocalClusterError as exc:
        print(f"interlink-k8s-sidecar: local cluster: {exc}", file=sys.stderr)
        return 1
    try:
        local_defaults["K8S_KUBECONFIG_PATH"] = str(cluster.kubeconfig)
        local_defaults["APP_STATE_DIR"] = str(workdir / "state")
        if cluster.real_node is not None:
            label, value = realnode.NODE_LABEL
            local_defaults["OFFLOADING_NODE_SELECTOR"] = json.dumps({label: value})
            local_defaults["OFFLOADING_NODE_TOLERATIONS"] = json.dumps([realnode.toleration()])
        config = load_or_exit(path, local_defaults)
        logconfig.configure(config.log.level)

        def announce(urls: list[str], ops_port: int) -> None:
            _say(f"kubeconfig: {cluster.kubeconfig}")
            _say(f"kwok pod log file: {cluster.pod_log_file}")
            if cluster.real_node is not None:
                _say(
                    f"real node {realnode.NODE_NAME} on {cluster.real_node.node_ip}: offloaded "
                    f"pods run there (image {realnode.BUSYBOX_IMAGE}, imagePullPolicy: Never)"
                )
            for url in urls:
                _say(f"plugin API: {url}")
            _say(f"ops: http://{config.app.ops_address}:{ops_port}/readyz")
            _say("ready: try the README's curl examples; Ctrl-C stops everything")

        return asyncio.run(app.run(config, on_ready=announce))
    finally:
        cluster.stop()
        _say("control plane stopped")


if __name__ == "__main__":
    raise SystemExit(main())
