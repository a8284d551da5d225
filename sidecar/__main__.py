"""Command line: ``interlink-k8s-sidecar [--config FILE] [--check-config]``.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 1 when a root task ended on its own,
2 for a bad argument or any configuration problem (all of them are printed, each with
its key). The embedded control plane of ``make run`` is development tooling in the
source checkout (``python -m tests.localcluster``), not part of this package: the old
``--local-cluster`` option is refused with a message saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sidecar import app, logconfig, settings

# Upstream's default location, relative to the working directory; used only if present.
UPSTREAM_DEFAULT_CONFIG = Path("private/config.ini")
# Moved out of the package (python -m tests.localcluster); refused with a pointer.
_DEV_ONLY_OPTION = "--local-cluster"


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
    return parser


def config_path(config: str | None) -> str | None:
    """The config file to read: ``--config``, else ``$CONFIG_FILE_PATH``, else upstream's
    ``private/config.ini`` if present, else none (defaults and environment only)."""
    if config:
        return str(config)
    if os.environ.get("CONFIG_FILE_PATH"):
        return os.environ["CONFIG_FILE_PATH"]
    return str(UPSTREAM_DEFAULT_CONFIG) if UPSTREAM_DEFAULT_CONFIG.is_file() else None


def load_or_exit(path: str | None, defaults: dict[str, str] | None = None) -> settings.Settings:
    """The settings, or every configuration problem printed (each with its key) and exit 2."""
    try:
        return settings.load(path, os.environ, defaults=defaults)
    except settings.SettingsError as exc:
        print(
            f"interlink-k8s-sidecar: {len(exc.problems)} configuration problem(s):", file=sys.stderr
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(app.EXIT_CONFIG) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = sys.argv[1:] if argv is None else list(argv)
    if any(a.startswith(_DEV_ONLY_OPTION) for a in arguments):  # and -dir
        parser.error(
            f"{_DEV_ONLY_OPTION} is a development tool, not part of the installed sidecar: "
            "run `make run` from a source checkout"
        )
    args = parser.parse_args(arguments)
    config = load_or_exit(config_path(args.config))
    if args.check_config:
        print(f"configuration OK ({config.source})")
        return 0
    logconfig.configure(config.log.level)
    return asyncio.run(app.run(config))


if __name__ == "__main__":
    raise SystemExit(main())
