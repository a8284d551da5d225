"""The real-node test images: valid, named, deterministic OCI archives, built once."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.localcluster.realnode.images import (
    BUSYBOX_BINARY,
    BUSYBOX_IMAGE,
    PAUSE_IMAGE,
    NodeImages,
    ensure_images,
)

pytestmark = [
    pytest.mark.skipif(
        not BUSYBOX_BINARY.is_file(),
        reason=f"{BUSYBOX_BINARY} missing (apt-get install busybox-static)",
    ),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc missing (it compiles pause.c)"),
]


def _read(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile()
        }


def _manifest_descriptor(files: dict[str, bytes]) -> dict[str, Any]:
    index = json.loads(files["index.json"])
    (descriptor,) = index["manifests"]
    assert isinstance(descriptor, dict)
    return descriptor


def _digests(images: NodeImages) -> list[str]:
    return [_manifest_descriptor(_read(p))["digest"] for p in (images.busybox, images.pause)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> NodeImages:
    return ensure_images(tmp_path_factory.mktemp("images"))


@pytest.mark.parametrize(
    ("field", "reference"), [("busybox", BUSYBOX_IMAGE), ("pause", PAUSE_IMAGE)]
)
def test_index_names_the_image_and_blobs_match_their_names(
    built: NodeImages, field: str, reference: str
) -> None:
    files = _read(getattr(built, field))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    annotations = _manifest_descriptor(files)["annotations"]
    assert annotations == {
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": reference.rpartition(":")[2],
    }
    blobs = {name: data for name, data in files.items() if name.startswith("blobs/")}
    assert len(blobs) == 3  # layer, config, manifest
    for name, data in blobs.items():
        assert name == f"blobs/sha256/{hashlib.sha256(data).hexdigest()}"


def test_busybox_layer_holds_the_binary_and_applet_links(built: NodeImages) -> None:
    files = _read(built.busybox)
    manifest = json.loads(files[f"blobs/sha256/{_manifest_descriptor(files)['digest'][7:]}"])
    (layer,) = manifest["layers"]
    config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'][7:]}"])
    assert config["config"]["Cmd"] == ["sh"]
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]
    with tarfile.open(fileobj=io.BytesIO(files[f"blobs/sha256/{layer['digest'][7:]}"])) as tar:
        members = {member.name: member for member in tar.getmembers()}
    assert members["bin/busybox"].isfile()
    assert members["bin/busybox"].size == BUSYBOX_BINARY.stat().st_size
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["usr/bin/env"].linkname == "../../bin/busybox"
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert {m.mtime for m in members.values()} == {0}
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


def test_two_builds_give_the_same_digests(built: NodeImages, tmp_path: Path) -> None:
    assert _digests(ensure_images(tmp_path)) == _digests(built)


def test_second_call_reuses_the_archives(tmp_path: Path) -> None:
    first = ensure_images(tmp_path)
    mtimes = [p.stat().st_mtime_ns for p in (first.busybox, first.pause)]
    lines: list[str] = []
    second = ensure_images(tmp_path, progress=lines.append)
    assert second == first
    assert [p.stat().st_mtime_ns for p in (second.busybox, second.pause)] == mtimes
    assert lines == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [first.busybox.name, first.pause.name]
    )
