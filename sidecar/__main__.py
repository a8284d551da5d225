"""Command line: ``interlink-k8s-sidecar [--config FILE] [--check-config] [--local-cluster]``.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 1 when a root task ended on its own
or the local cluster failed, 2 for any configuration problem (all of them are printed,
each with its key).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sidecar import app, logconfig, settings

# Upstream's default location, relative to the working directory; used only if present.
UPSTREAM_DEFAULT_CONFIG = Path("private/config.ini")
LOCAL_CLUSTER_PLUGIN_PORT = "4000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interlink-k8s-sidecar",
        description="InterLink plugin that runs pods in a remote Kubernetes cluster.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config.ini to read (default: $CONFIG_FILE_PATH, else private/config.ini if present)",
    )
    parser.add_argument(
        "--check-config", action="store_true", help="validate the configuration and exit"
    )
    parser.add_argument(
        "--local-cluster",
        action="store_true",
        help="start an embedded control plane with kwok nodes and offload to it "
        "(builds the binaries on first use)",
    )
    parser.add_argument(
        "--local-cluster-dir",
        metavar="DIR",
        help="where the embedded control plane keeps its state (default: a new temporary "
        "directory)",
    )
    return parser


def _config_path(args: argparse.Namespace) -> str | None:
    if args.config:
        return str(args.config)
    if os.environ.get("CONFIG_FILE_PATH"):
        return os.environ["CONFIG_FILE_PATH"]
    return str(UPSTREAM_DEFAULT_CONFIG) if UPSTREAM_DEFAULT_CONFIG.is_file() else None


def _load(path: str | None, defaults: dict[str, str] | None = None) -> settings.Settings:
    try:
        return settings.load(path, os.environ, defaults=defaults)
    except settings.SettingsError as exc:
        print(
            f"interlink-k8s-sidecar: {len(exc.problems)} configuration problem(s):", file=sys.stderr
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(app.EXIT_CONFIG) from None


def _say(line: str) -> None:
    print(f"[local-cluster] {line}", flush=True)


def _run_local_cluster(args: argparse.Namespace, path: str | None) -> int:
    # Imported here: the plain sidecar never needs the control-plane code.
    from sidecar.localcluster import LocalCluster, LocalClusterError, ensure_binaries

    local_defaults = {
        "APP_SOCKET_ADDRESS": "http://127.0.0.1",
        "APP_SOCKET_PORT": LOCAL_CLUSTER_PLUGIN_PORT,
        "K8S_KUBECONFIG_PATH": "",
    }
    _load(path, local_defaults)  # report configuration problems before a long start
    workdir = Path(args.local_cluster_dir or tempfile.mkdtemp(prefix="interlink-local-cluster-"))
    try:
        binaries = ensure_binaries(progress=_say)
        cluster = LocalCluster(workdir, binaries, progress=_say)
        cluster.start()
    except LocalClusterError as exc:
        print(f"interlink-k8s-sidecar: local cluster: {exc}", file=sys.stderr)
        return 1
    try:
        local_defaults["K8S_KUBECONFIG_PATH"] = str(cluster.kubeconfig)
        local_defaults["APP_STATE_DIR"] = str(workdir / "state")
        config = _load(path, local_defaults)
        logconfig.configure(config.log.level)

        def announce(urls: list[str], ops_port: int) -> None:
            _say(f"kubeconfig: {cluster.kubeconfig}")
            _say(f"kwok pod log file: {cluster.pod_log_file}")
            for url in urls:
                _say(f"plugin API: {url}")
            _say(f"ops: http://{config.app.ops_address}:{ops_port}/readyz")
            _say("ready: try the README's curl examples; Ctrl-C stops everything")

        return asyncio.run(app.run(config, on_ready=announce))
    finally:
        cluster.stop()
        _say("control plane stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = _config_path(args)
    if args.local_cluster:
        return _run_local_cluster(args, path)
    config = _load(path)
    if args.check_config:
        print(f"configuration OK ({config.source})")
        return 0
    logconfig.configure(config.log.level)
    return asyncio.run(app.run(config))


if __name__ == "__main__":
    raise SystemExit(main())
