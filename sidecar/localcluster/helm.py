"""Finding or building helm, for the chart's tests (the sidecar itself never runs helm).

Like the control-plane binaries, helm is built once from the Go module proxy
(``build-helm.sh``, module ``helm.sh/helm/v3``) into its own cache directory,
``~/.cache/interlink-k8s-sidecar/bin/helm-<version>/helm``, and reused. ``HELM_BIN``
points at a ready helm binary instead. ``python -m sidecar.localcluster.helm`` builds
it ahead of time and prints its path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from sidecar.localcluster.binaries import cache_root

HELM_VERSION = "3.22.0"
HELM_BIN_ENV = "HELM_BIN"
_SCRIPT = Path(__file__).with_name("build-helm.sh")


class HelmError(Exception):
    """helm cannot be had; a one-line reason and what to do."""


def helm_directory(environ: Mapping[str, str] = os.environ) -> Path:
    """The cache directory of the built helm (separate from the control plane's)."""
    return cache_root(environ) / "bin" / f"helm-{HELM_VERSION}"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def ensure_helm(
    *, progress: Callable[[str], None] = print, environ: Mapping[str, str] = os.environ
) -> Path:
    """A ready helm binary: ``$HELM_BIN``, the cache, or a fresh build."""
    if environ.get(HELM_BIN_ENV):
        given = Path(environ[HELM_BIN_ENV])
        if not _executable(given):
            raise HelmError(
                f"{HELM_BIN_ENV}={given} is not an executable file: point it at a helm "
                "binary, or unset it to build helm"
            )
        return given
    binary = helm_directory(environ) / "helm"
    if _executable(binary):
        return binary
    if shutil.which("go", path=environ.get("PATH")) is None:
        raise HelmError(
            "helm is not built and 'go' is not on PATH: install Go >= 1.26, or set "
            f"{HELM_BIN_ENV} to a helm binary"
        )
    _build(binary.parent, progress=progress, environ=environ)
    if not _executable(binary):
        raise HelmError(f"the helm build finished but {binary} is missing")
    return binary


def _build(directory: Path, *, progress: Callable[[str], None], environ: Mapping[str, str]) -> None:
    log_path = cache_root(environ) / "helm-build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress(
        f"building helm {HELM_VERSION} into {directory} "
        f"(cold: about 2 min on 2 cores; log: {log_path})"
    )
    started = time.monotonic()
    last = ""
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            ["bash", str(_SCRIPT), HELM_VERSION, str(directory), str(cache_root(environ) / "work")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(environ),
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            last = line.strip() or last
            if line.startswith("[helm build]"):
                progress(line.rstrip())
        code = process.wait()
    if code != 0:
        raise HelmError(
            f"helm build failed (exit {code}): {last}; see {log_path}, fix the cause and "
            f"retry, or set {HELM_BIN_ENV} to a helm binary"
        )
    progress(f"helm built in {time.monotonic() - started:.0f} s")


def main() -> int:
    try:
        binary = ensure_helm(progress=lambda line: print(line, flush=True))
    except HelmError as exc:
        print(f"helm: {exc}", file=sys.stderr)
        return 1
    print(binary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
