"""The two container images a real kubelet+containerd node needs, built without a registry.

The real-node tests run pods on a real kubelet backed by containerd, on machines with no
registry access. Every image they use is therefore built here from what Debian installs
and imported straight into containerd's ``k8s.io`` namespace, and the pods use
``imagePullPolicy: Never`` (the sandbox image is containerd's CRI ``sandbox_image``):

* ``BUSYBOX_IMAGE``: Debian's static busybox (``busybox-static``, ``/bin/busybox``) with a
  relative symlink for every applet ``busybox --list-full`` names, a minimal
  ``/etc/passwd`` and ``/etc/group`` (root, nobody), ``/tmp`` (1777) and ``/root``;
  ``PATH`` set, ``Cmd ["sh"]``.
* ``PAUSE_IMAGE``: ``pause.c`` next to this file, compiled with ``gcc -Os -static -s``
  (exits 0 on SIGINT/SIGTERM, reaps children, pauses otherwise); ``Entrypoint
  ["/pause"]``.

Contract: ``ensure_images(cache_dir)`` returns one OCI image-layout archive (a plain tar)
per image in ``cache_dir``. An archive's file name carries a hash of its inputs (the
busybox binary or ``pause.c``, ``BUILDER_VERSION``, the architecture): when that file
exists it is reused as is, otherwise it is built into a temporary file and renamed into
place, and archives of older inputs are deleted. The output is deterministic (fixed
mtimes, sorted entries, uid/gid 0, canonical JSON), so the same inputs give the same
digests on every machine (for pause: with the same gcc and static libc, which the cache
key leaves out so that a warm cache needs no compiler). What cannot be done raises ``LocalClusterError`` with a
one-line reason and what to do. ``import_images`` loads both archives with
``ctr images import``, which also unpacks them into the default snapshotter.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.localcluster.binaries import LocalClusterError

BUSYBOX_IMAGE = "interlink-test.local/busybox:1.35"
PAUSE_IMAGE = "interlink-test.local/pause:1"
# Bump when this module changes the bytes it produces: the archive names change with it,
# so every cache rebuilds instead of reusing archives made the old way.
BUILDER_VERSION = 1
BUSYBOX_BINARY = Path("/bin/busybox")
PAUSE_SOURCE = Path(__file__).with_name("pause.c")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SUFFIX = ".oci.tar"

# OCI image-spec media types. The layer is an uncompressed tar: the archive only ever
# travels to a containerd on the same machine and gzip would save about 1 MB, while gzip's
# bytes depend on the zlib version (so would the digests, breaking "same inputs, same
# digest" across machines) and containerd would have to decompress it again on import.
# Uncompressed also makes the layer digest and its diff_id the same.
_INDEX = "application/vnd.oci.image.index.v1+json"
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar"
# How containerd 1.6 names what it imports from an OCI archive (import.go, imageName): a
# manifest descriptor in index.json annotated with io.containerd.image.name becomes an
# image of exactly that name. Without it, only org.opencontainers.image.ref.name is left,
# which by the OCI spec is a bare tag ("1.35"); `ctr images import` then prefixes it with
# --base-name, or with a generated "import-<date>" when none is given. Both annotations
# are written, so the archive also reads right in OCI-only tools.
_CONTAINERD_NAME = "io.containerd.image.name"
_OCI_REF_NAME = "org.opencontainers.image.ref.name"

# platform.machine() -> GOARCH, the architecture names of OCI image configs.
_ARCHITECTURES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"


@dataclass(frozen=True, slots=True)
class NodeImages:
    busybox: Path  # OCI archive (tar) path
    pause: Path


@dataclass(frozen=True, slots=True)
class _Entry:
    """One member of a layer tar."""

    name: str
    kind: bytes  # tarfile.DIRTYPE, REGTYPE or SYMTYPE
    mode: int
    data: bytes = b""
    target: str = ""


def ensure_images(
    cache_dir: Path, *, progress: Callable[[str], None] = lambda _l: None
) -> NodeImages:
    """Build the archives into cache_dir once (reuse when present and the inputs — busybox
    binary hash, pause.c hash, builder version — are unchanged; write atomically: temp file
    + rename). Raise LocalClusterError with a one-line reason and what to do (e.g.
    'apt-get install busybox-static', 'gcc missing') when it cannot."""
    architecture = host_architecture()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LocalClusterError(f"cannot create the image cache {cache_dir}: {error}") from error
    busybox = _read_input(
        BUSYBOX_BINARY,
        f"{BUSYBOX_BINARY} not found: install it with 'apt-get install -y busybox-static'",
    )
    source = _read_input(PAUSE_SOURCE, f"{PAUSE_SOURCE} not found: restore it from the repository")
    return NodeImages(
        busybox=_ensure_archive(
            cache_dir,
            "busybox",
            busybox,
            architecture,
            lambda: _busybox_image(busybox),
            progress,
        ),
        pause=_ensure_archive(
            cache_dir,
            "pause",
            source,
            architecture,
            _pause_image,
            progress,
        ),
    )


def import_images(
    images: NodeImages, *, address: Path, namespace: str = "k8s.io", ctr: str = "ctr"
) -> None:
    """`ctr --address <address> -n <namespace> images import <archive>` for both; raise
    LocalClusterError naming the image and ctr's stderr on failure."""
    for name, archive in ((BUSYBOX_IMAGE, images.busybox), (PAUSE_IMAGE, images.pause)):
        argv = [ctr, "--address", str(address), "-n", namespace, "images", "import"]
        try:
            done = subprocess.run(
                [*argv, str(archive)], capture_output=True, text=True, timeout=300, check=False
            )
        except FileNotFoundError as error:
            raise LocalClusterError(
                f"cannot import {name}: {ctr!r} not found: install it with "
                "'apt-get install -y containerd'"
            ) from error
        except subprocess.TimeoutExpired as error:
            raise LocalClusterError(
                f"importing {name} from {archive} into {address} took over 300 s: "
                "check that containerd is running and answering there"
            ) from error
        if done.returncode != 0:
            reason = " ".join(done.stderr.split()) or f"exit {done.returncode}"
            raise LocalClusterError(
                f"importing {name} from {archive} into {address} (namespace {namespace}) "
                f"failed: {reason}"
            )


def host_architecture() -> str:
    """The OCI (GOARCH) name of this machine's architecture."""
    machine = platform.machine()
    try:
        return _ARCHITECTURES[machine.lower()]
    except KeyError:
        raise LocalClusterError(
            f"no OCI architecture known for machine {machine!r}: add it to "
            "_ARCHITECTURES in tests/localcluster/realnode/images.py"
        ) from None


def _read_input(path: Path, missing: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise LocalClusterError(missing) from None
    except OSError as error:
        raise LocalClusterError(f"cannot read {path}: {error}") from error


def _ensure_archive(
    cache_dir: Path,
    stem: str,
    source: bytes,
    architecture: str,
    build: Callable[[], tuple[str, str, list[_Entry], dict[str, Any]]],
    progress: Callable[[str], None],
) -> Path:
    key = hashlib.sha256()
    for part in (f"{stem}/{BUILDER_VERSION}/{architecture}/".encode(), source):
        key.update(part)
    target = cache_dir / f"{stem}-{key.hexdigest()[:16]}{_SUFFIX}"
    if target.is_file():
        return target
    started = time.monotonic()
    reference, tag, entries, config = build()
    data = _oci_archive(reference, tag, architecture, entries, config)
    handle, temporary = tempfile.mkstemp(dir=cache_dir, prefix=f".{stem}-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    for stale in cache_dir.glob(f"{stem}-*{_SUFFIX}"):
        if stale != target:
            stale.unlink(missing_ok=True)
    progress(
        f"built image {reference} into {target} "
        f"({len(data) / 1e6:.1f} MB, {time.monotonic() - started:.1f} s)"
    )
    return target


def _busybox_image(busybox: bytes) -> tuple[str, str, list[_Entry], dict[str, Any]]:
    if not _is_static_elf(busybox):
        raise LocalClusterError(
            f"{BUSYBOX_BINARY} is not a static executable (Debian's 'busybox' package?): "
            "install the static one with 'apt-get install -y busybox-static'"
        )
    try:
        listed = subprocess.run(
            [str(BUSYBOX_BINARY), "--list-full"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        raise LocalClusterError(
            f"'{BUSYBOX_BINARY} --list-full' failed ({error}): reinstall it with "
            "'apt-get install --reinstall -y busybox-static'"
        ) from error
    entries = [
        _Entry("bin/busybox", tarfile.REGTYPE, 0o755, data=busybox),
        _Entry("etc/passwd", tarfile.REGTYPE, 0o644, data=_PASSWD),
        _Entry("etc/group", tarfile.REGTYPE, 0o644, data=_GROUP),
        _Entry("tmp", tarfile.DIRTYPE, 0o1777),
        _Entry("root", tarfile.DIRTYPE, 0o700),
    ]
    for applet in sorted(set(listed) - {"bin/busybox"}):
        # Relative links (bin/sh -> busybox, usr/bin/env -> ../../bin/busybox) resolve
        # the same inside the container and in an unpacked copy of the layer.
        link = os.path.relpath("bin/busybox", os.path.dirname(applet) or ".")
        entries.append(_Entry(applet, tarfile.SYMTYPE, 0o777, target=link))
    config = {"Env": [f"PATH={_PATH}"], "Cmd": ["sh"]}
    return BUSYBOX_IMAGE, BUSYBOX_IMAGE.rpartition(":")[2], entries, config


def _pause_image() -> tuple[str, str, list[_Entry], dict[str, Any]]:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise LocalClusterError(
            "gcc missing (it compiles the pause image's pause.c): install it with "
            "'apt-get install -y gcc libc6-dev'"
        )
    with tempfile.TemporaryDirectory(prefix="pause-build-") as work:
        binary = Path(work) / "pause"
        argv = [gcc, "-Os", "-static", "-s", "-o", str(binary), str(PAUSE_SOURCE)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            raise LocalClusterError(f"running gcc on {PAUSE_SOURCE} failed: {error}") from error
        if done.returncode != 0:
            last = next((line for line in reversed(done.stderr.splitlines()) if line), "")
            raise LocalClusterError(
                f"compiling {PAUSE_SOURCE} failed (exit {done.returncode}): {last.strip()}; "
                "a static build needs libc.a: 'apt-get install -y libc6-dev'"
            )
        data = binary.read_bytes()
    if not _is_static_elf(data):
        raise LocalClusterError(
            f"gcc -static produced a dynamically linked pause from {PAUSE_SOURCE}: "
            "check the toolchain ('apt-get install -y gcc libc6-dev')"
        )
    entries = [_Entry("pause", tarfile.REGTYPE, 0o755, data=data)]
    return PAUSE_IMAGE, PAUSE_IMAGE.rpartition(":")[2], entries, {"Entrypoint": ["/pause"]}


def _is_static_elf(data: bytes) -> bool:
    """An ELF executable without a PT_INTERP program header (no dynamic loader)."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return False
    wide = data[4] == 2
    order: Literal["little", "big"] = "little" if data[5] == 1 else "big"

    def number(offset: int, size: int) -> int:
        return int.from_bytes(data[offset : offset + size], order)

    table = number(0x20, 8) if wide else number(0x1C, 4)
    entry_size = number(0x36 if wide else 0x2A, 2)
    count = number(0x38 if wide else 0x2C, 2)
    pt_interp = 3
    return not any(number(table + i * entry_size, 4) == pt_interp for i in range(count))


def _layer(entries: Iterable[_Entry]) -> bytes:
    """A deterministic layer tar: parent directories added, members sorted by name,
    mtime 0, uid/gid 0 without names, ustar headers (no pax records to vary)."""
    members = {entry.name: entry for entry in entries}
    for name in list(members):
        parent = os.path.dirname(name)
        while parent and parent not in members:
            members[parent] = _Entry(parent, tarfile.DIRTYPE, 0o755)
            parent = os.path.dirname(parent)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            entry = members[name]
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = entry.kind, entry.mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.linkname = entry.target
            info.size = len(entry.data)
            tar.addfile(info, io.BytesIO(entry.data) if entry.kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}",
        "size": len(blob),
    }


def _oci_archive(
    reference: str,
    tag: str,
    architecture: str,
    entries: list[_Entry],
    settings: dict[str, Any],
) -> bytes:
    """An OCI image layout (oci-layout, index.json, blobs/sha256/<hex>) as one tar."""
    layer = _layer(entries)
    layer_descriptor = _descriptor(_LAYER, layer)
    config = _canonical(
        {
            "architecture": architecture,
            "os": "linux",
            "config": settings,
            # Uncompressed layer: its diff_id (digest of the tar) is its digest.
            "rootfs": {"type": "layers", "diff_ids": [layer_descriptor["digest"]]},
            "history": [
                {"created_by": f"tests/localcluster/realnode/images.py v{BUILDER_VERSION}"}
            ],
        }
    )
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": _MANIFEST,
            "config": _descriptor(_CONFIG, config),
            "layers": [layer_descriptor],
        }
    )
    index = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": _INDEX,
            "manifests": [
                {
                    **_descriptor(_MANIFEST, manifest),
                    "platform": {"architecture": architecture, "os": "linux"},
                    "annotations": {_CONTAINERD_NAME: reference, _OCI_REF_NAME: tag},
                }
            ],
        }
    )
    files = {
        "oci-layout": _canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": index,
    }
    for blob in (layer, config, manifest):
        files[f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"] = blob
    return _layer(_Entry(name, tarfile.REGTYPE, 0o644, data=data) for name, data in files.items())
