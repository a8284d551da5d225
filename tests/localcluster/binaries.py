"""Finding or building the control-plane binaries.

No registry ships kube-apiserver and friends, so they are built from the Go module proxy
(``build-control-plane.sh``) into ``~/.cache/interlink-k8s-sidecar/bin/`` once and reused.
``LOCAL_CLUSTER_BIN_DIR`` points at a directory with ready binaries instead (like
envtest's ``KUBEBUILDER_ASSETS``). etcd is built too (see the script for why Debian's
3.4 is not enough); a directory from ``LOCAL_CLUSTER_BIN_DIR`` without etcd falls back to
the ``etcd`` on PATH (Debian ``etcd-server``). The kubelet (real-node tests only) is built
into the cache with the rest; a ``LOCAL_CLUSTER_BIN_DIR`` without one gives
``Binaries.kubelet = None`` and those tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "1.35.4"
KWOK_VERSION = "0.8.0"
ETCD_VERSION = "3.5.21"
# Bump when build-control-plane.sh changes what it produces: a new cache directory
# makes every machine rebuild instead of reusing binaries made the old way. (Adding the
# kubelet did not: the other binaries come out byte-identical, so a cache directory
# without a kubelet is completed in place.)
BUILD_RECIPE = 2
BIN_DIR_ENV = "LOCAL_CLUSTER_BIN_DIR"
_BUILT = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
_CACHED = (*_BUILT, "etcd", "kubelet")
_SCRIPT = Path(__file__).with_name("build-control-plane.sh")


class LocalClusterError(Exception):
    """The local control plane cannot be had; a one-line reason and what to do."""


@dataclass(frozen=True, slots=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kubelet: Path | None = None


def cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "interlink-k8s-sidecar"


def _find_etcd(directory: Path | None) -> Path:
    if directory is not None and (directory / "etcd").is_file():
        return directory / "etcd"
    found = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").is_file() else None)
    if found is None:
        raise LocalClusterError(
            "etcd not found: install it with 'apt-get install -y etcd-server' "
            f"(or put an etcd binary in ${BIN_DIR_ENV})"
        )
    return Path(found)


def _from_directory(directory: Path) -> Binaries | None:
    if not all((directory / name).is_file() for name in _BUILT):
        return None
    return Binaries(
        etcd=_find_etcd(directory),
        kube_apiserver=directory / "kube-apiserver",
        kube_controller_manager=directory / "kube-controller-manager",
        kube_scheduler=directory / "kube-scheduler",
        kwok=directory / "kwok",
        kubelet=directory / "kubelet" if (directory / "kubelet").is_file() else None,
    )


def build_directory(environ: Mapping[str, str] = os.environ) -> Path:
    name = f"k8s-{K8S_VERSION}-kwok-{KWOK_VERSION}-etcd-{ETCD_VERSION}-r{BUILD_RECIPE}"
    return cache_root(environ) / "bin" / name


def ensure_binaries(
    *, progress: Callable[[str], None] = print, environ: Mapping[str, str] = os.environ
) -> Binaries:
    """Ready binaries: from ``$LOCAL_CLUSTER_BIN_DIR``, the cache, or a fresh build."""
    if environ.get(BIN_DIR_ENV):
        directory = Path(environ[BIN_DIR_ENV])
        found = _from_directory(directory)
        if found is None:
            missing = [n for n in _BUILT if not (directory / n).is_file()]
            raise LocalClusterError(
                f"{BIN_DIR_ENV}={directory} lacks {', '.join(missing)}: "
                "point it at a directory with all of them, or unset it to build them"
            )
        return found
    directory = build_directory(environ)
    if all((directory / name).is_file() for name in _CACHED):
        found = _from_directory(directory)
        assert found is not None
        return found
    if shutil.which("go", path=environ.get("PATH")) is None:
        raise LocalClusterError(
            "the control-plane binaries are not built and 'go' is not on PATH: install Go "
            f">= 1.25, or set {BIN_DIR_ENV} to a directory with {', '.join(_BUILT)}"
        )
    _build(directory, progress=progress, environ=environ)
    found = _from_directory(directory)
    if found is None or not all((directory / name).is_file() for name in _CACHED):
        raise LocalClusterError(f"the build finished but {directory} is incomplete")
    return found


def run_build_script(
    argv: list[str],
    *,
    log_path: Path,
    marker: str,
    progress: Callable[[str], None],
    environ: Mapping[str, str],
) -> tuple[int, str]:
    """Run ``bash argv...`` with its whole output in ``log_path`` and the lines starting
    with ``marker`` passed to ``progress``; (exit code, last non-empty line)."""
    last = ""
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            ["bash", *argv],
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
            if line.startswith(marker):
                progress(line.rstrip())
        return process.wait(), last


def _build(directory: Path, *, progress: Callable[[str], None], environ: Mapping[str, str]) -> None:
    log_path = cache_root(environ) / "build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress(
        f"building kube-apiserver, kube-controller-manager, kube-scheduler, kubelet "
        f"{K8S_VERSION}, etcd {ETCD_VERSION} and kwok {KWOK_VERSION} into {directory} "
        f"(those already there are kept; cold: about 7 min on 2 cores; log: {log_path})"
    )
    started = time.monotonic()
    code, last = run_build_script(
        [
            str(_SCRIPT),
            K8S_VERSION,
            KWOK_VERSION,
            ETCD_VERSION,
            str(directory),
            str(cache_root(environ) / "work"),
        ],
        log_path=log_path,
        marker="[control-plane build]",
        progress=progress,
        environ=environ,
    )
    if code != 0:
        raise LocalClusterError(
            f"control-plane build failed (exit {code}): {last}; see {log_path}, fix the "
            f"cause and retry, or set {BIN_DIR_ENV} to a directory with ready binaries"
        )
    progress(f"control-plane binaries built in {time.monotonic() - started:.0f} s")
