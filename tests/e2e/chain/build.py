"""Finding or building interLink's ``interlink`` (API server) and ``virtual-kubelet``.

The interLink module is not on the Go module proxy reachable here, so the binaries are
built from source during the set-up and cached next to the control-plane binaries, under
``~/.cache/interlink-k8s-sidecar/bin/interlink-<version>-<sha256 of the source>-r<recipe>/``
(never in the repository). Where the source comes from, first match wins:

- ``$INTERLINK_BIN_DIR``: a directory with ready ``interlink`` and ``virtual-kubelet``;
- ``$INTERLINK_SRC_DIR``: a source checkout (e.g. upstream ``interlink-hq/interLink`` at
  tag ``0.6.2``), keyed by the sha256 of its Go sources;
- ``$INTERLINK_ARCHIVE``, else ``../shared/vendor/interlink-0.6.2.tar.gz`` relative to the
  repository: a release archive, keyed by its sha256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.localcluster.binaries import cache_root

INTERLINK_VERSION = "0.6.2"
# Bump when the build command changes what it produces (a new cache directory).
BUILD_RECIPE = 1
BIN_DIR_ENV = "INTERLINK_BIN_DIR"
SRC_DIR_ENV = "INTERLINK_SRC_DIR"
ARCHIVE_ENV = "INTERLINK_ARCHIVE"
BINARIES = ("interlink", "virtual-kubelet")
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_ARCHIVE = REPO_ROOT.parent / "shared" / "vendor" / f"interlink-{INTERLINK_VERSION}.tar.gz"


class ChainUnavailable(Exception):
    """The interLink binaries cannot be had; a one-line reason and what to do."""


class ChainBuildFailed(ChainUnavailable):
    """A source was there but ``go build`` failed: a set-up error, not a missing input."""


@dataclass(frozen=True, slots=True)
class InterlinkBinaries:
    interlink: Path
    virtual_kubelet: Path


def _from_directory(directory: Path) -> InterlinkBinaries | None:
    found = [directory / name for name in BINARIES]
    if not all(path.is_file() and os.access(path, os.X_OK) for path in found):
        return None
    return InterlinkBinaries(interlink=found[0], virtual_kubelet=found[1])


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_tree(root: Path) -> str:
    """The Go sources' identity: every file under cmd/ and pkg/, go.mod and go.sum."""
    digest = hashlib.sha256()
    files = [root / "go.mod", root / "go.sum"]
    for sub in ("cmd", "pkg"):
        files += sorted(p for p in (root / sub).rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class _Source:
    describe: str
    key: str
    """sha256 of the archive or of the source tree."""
    archive: Path | None = None
    tree: Path | None = None


def _source(environ: Mapping[str, str]) -> _Source:
    if environ.get(SRC_DIR_ENV):
        tree = Path(environ[SRC_DIR_ENV]).resolve()
        if not (tree / "go.mod").is_file() or not (tree / "cmd" / "virtual-kubelet").is_dir():
            raise ChainUnavailable(
                f"{SRC_DIR_ENV}={tree} is not an interLink source checkout (no go.mod or "
                "cmd/virtual-kubelet): point it at one, or unset it"
            )
        return _Source(f"source tree {tree}", _sha256_tree(tree), tree=tree)
    archive = Path(environ.get(ARCHIVE_ENV) or DEFAULT_ARCHIVE)
    if not archive.is_file():
        raise ChainUnavailable(
            f"no interLink source: {archive} does not exist; set {BIN_DIR_ENV} to a directory "
            f"with ready {' and '.join(BINARIES)}, or {SRC_DIR_ENV} to a checkout of "
            f"interlink-hq/interLink at tag {INTERLINK_VERSION}"
        )
    return _Source(f"archive {archive}", _sha256_file(archive), archive=archive)


def build_directory(key: str, environ: Mapping[str, str] = os.environ) -> Path:
    name = f"interlink-{INTERLINK_VERSION}-{key[:16]}-r{BUILD_RECIPE}"
    return cache_root(environ) / "bin" / name


def ensure_interlink(
    *, progress: Callable[[str], None] = print, environ: Mapping[str, str] = os.environ
) -> InterlinkBinaries:
    """Ready binaries: from ``$INTERLINK_BIN_DIR``, the cache, or a fresh build."""
    if environ.get(BIN_DIR_ENV):
        directory = Path(environ[BIN_DIR_ENV])
        found = _from_directory(directory)
        if found is None:
            raise ChainUnavailable(
                f"{BIN_DIR_ENV}={directory} lacks an executable {' or '.join(BINARIES)}: "
                "point it at a directory with both, or unset it to build them"
            )
        return found
    source = _source(environ)
    directory = build_directory(source.key, environ)
    found = _from_directory(directory)
    if found is not None:
        return found
    if shutil.which("go", path=environ.get("PATH")) is None:
        raise ChainUnavailable(
            "the interLink binaries are not built and 'go' is not on PATH: install Go >= 1.26, "
            f"or set {BIN_DIR_ENV} to a directory with {' and '.join(BINARIES)}"
        )
    _build(source, directory, progress=progress, environ=environ)
    found = _from_directory(directory)
    if found is None:
        raise ChainUnavailable(f"the interLink build finished but {directory} is incomplete")
    return found


def _unpack(archive: Path, work: Path) -> Path:
    """The archive's single top directory, unpacked under ``work`` (replaced if present)."""
    with tarfile.open(archive) as tar:
        tops = {member.name.split("/", 1)[0] for member in tar.getmembers()}
        if len(tops) != 1:
            raise ChainUnavailable(f"{archive}: expected one top directory, found {sorted(tops)}")
        [top] = tops
        shutil.rmtree(work / top, ignore_errors=True)
        tar.extractall(work, filter="data")
    return work / top


def _build(
    source: _Source, directory: Path, *, progress: Callable[[str], None], environ: Mapping[str, str]
) -> None:
    root = cache_root(environ)
    log_path = root / "interlink-build.log"
    root.mkdir(parents=True, exist_ok=True)
    progress(
        f"building interLink {INTERLINK_VERSION} ({', '.join(BINARIES)}) from {source.describe} "
        f"into {directory} (cold: 8-9 min on 2 cores, under 1 min when the Go build cache is "
        f"warm; log: {log_path})"
    )
    started = time.monotonic()
    unpacked = root / "work" / f"interlink-src-{source.key[:16]}"
    if source.archive is not None:
        tree = _unpack(source.archive, unpacked)
    else:
        assert source.tree is not None
        tree = source.tree
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    argv = [
        "go",
        "build",
        "-trimpath",
        "-ldflags",
        "-s -w",
        "-o",
        f"{partial}/",
        "./cmd/interlink",
        "./cmd/virtual-kubelet",
    ]
    env = dict(environ) | {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    with log_path.open("w") as log:
        log.write(f"$ (cd {tree} && {' '.join(argv)})\n")
        log.flush()
        code = subprocess.run(
            argv, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        ).returncode
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise ChainBuildFailed(
            f"the interLink build failed (exit {code}): {' | '.join(tail)}; see {log_path}, "
            f"fix the cause and retry, or set {BIN_DIR_ENV} to ready binaries"
        )
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    if source.archive is not None:
        shutil.rmtree(unpacked, ignore_errors=True)
    progress(f"interLink binaries built in {time.monotonic() - started:.0f} s")
