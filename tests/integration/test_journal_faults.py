"""The journal can't be poisoned or lost: a full and a read-only state dir, a poisoned
journal file at start, and the retry cap reaching a dead letter, against the real
control plane.

The state dir faults are real file systems: a small tmpfs mounted on the state dir
(filled to ENOSPC, or remounted read-only). Every mount is recorded and undone, even
when the test fails; without the right to mount (not root, no CAP_SYS_ADMIN) those tests
are skipped with the reason. A remote delete that cannot finish is a pod held by a
finalizer (kwok removes a pod only once its finalizers are gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import podshapes
from tests.fixtures.sidecar_process import SidecarProcess, StartSidecar
from tests.integration.plugin_client import call, metric_value, ops_get_async, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

REMOTE_NAMESPACE = "offloading-default"  # the fixture's namespace_prefix + "default"
HOLD = "test.interlink.io/hold"


# --- mounts, recorded and undone ------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def small_tmpfs(path: Path, *, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` for the test; unmounted at the end
    (lazily if something still holds it), whatever happens."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        pytest.skip(f"cannot mount a tmpfs on {path} (root with CAP_SYS_ADMIN needed): {detail}")
    try:
        yield path
    finally:
        result = subprocess.run(["umount", str(path)], capture_output=True, check=False)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        assert not path.is_mount(), f"{path} is still mounted"


def fill(directory: Path) -> Path:
    """Write a file into ``directory`` until the file system is full (ENOSPC)."""
    filler = directory / "filler"

    def write_for_ever() -> None:
        with filler.open("wb") as handle:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()

    with pytest.raises(OSError, match="No space left") as full:
        write_for_ever()
    assert full.value.errno == errno.ENOSPC
    return filler


def fill_up(state: Path) -> Callable[[], None]:
    filler = fill(state)
    return lambda: filler.unlink()


def read_only(state: Path) -> Callable[[], None]:
    _mount("-o", "remount,ro", str(state))
    return lambda: _mount("-o", "remount,rw", str(state))


# --- the remote side ------------------------------------------------------------------------


def remote_pods(cluster: LocalCluster, uid: str) -> list[dict[str, Any]]:
    path = (
        f"/api/v1/namespaces/{REMOTE_NAMESPACE}/pods"
        f"?labelSelector=interlink.io%2Fsource.pod_uid%3D{uid}"
    )
    items: list[dict[str, Any]] = cluster.request("GET", path)["items"]
    return items


def set_hold(cluster: LocalCluster, uid: str, *, held: bool) -> None:
    """Add (or remove) a finalizer on the pod's remote pod: its delete cannot finish."""
    for pod in remote_pods(cluster, uid):
        name = pod["metadata"]["name"]
        cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{REMOTE_NAMESPACE}/pods/{name}",
            {"metadata": {"finalizers": [HOLD] if held else None}},
        )


@contextlib.contextmanager
def held_pod(cluster: LocalCluster) -> Iterator[Callable[[str], None]]:
    """Register uids whose remote pods hold the finalizer; released at the end."""
    uids: list[str] = []
    try:
        yield uids.append
    finally:
        for uid in uids:
            with contextlib.suppress(urllib.error.URLError, OSError):
                set_hold(cluster, uid, held=False)


async def offload_held(
    sidecar: SidecarProcess, cluster: LocalCluster, hold: Callable[[str], None]
) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    spec = {"containers": [podshapes.container("main")]}
    body = podshapes.body(podshapes.pod(uid, f"held-{uid[:8]}", spec))
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer
    hold(uid)
    set_hold(cluster, uid, held=True)
    pod: dict[str, Any] = body["pod"]
    return pod


def journal(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / "pending-deletes.json").read_text())
    return data


# --- an unwritable state dir ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "error"),
    [(fill_up, "No space left on device"), (read_only, "Read-only file system")],
    ids=["full", "read-only"],
)
async def test_an_unwritable_journal_is_answered_honestly_and_turns_health_red(
    start_sidecar: StartSidecar,
    control_plane: LocalCluster,
    tmp_path: Path,
    damage: Callable[[Path], Callable[[], None]],
    error: str,
) -> None:
    with small_tmpfs(tmp_path / "state") as state, held_pod(control_plane) as hold:
        sidecar = start_sidecar(state_dir=state)
        held = await offload_held(sidecar, control_plane, hold)
        uid = held["metadata"]["uid"]
        repair = damage(state)
        try:
            code, answer = await call(sidecar, "POST", "/delete", held)
            # Not finished (the finalizer) and not recorded: no promise.
            assert code == 503, answer
            assert b"app.state_dir" in answer and error.encode() in answer
            # ... but the remote delete was tried at once.
            [remote] = remote_pods(control_plane, uid)
            assert remote["metadata"].get("deletionTimestamp"), "the delete was not tried"

            # A delete that finishes at once is done, recorded or not.
            spec = {"containers": [podshapes.container("main")]}
            unknown = podshapes.pod(str(uuid.uuid4()), "never-offloaded", spec)
            code, answer = await call(sidecar, "POST", "/delete", unknown)
            assert code == 200 and b"deleted" in answer, answer

            status, body = await ops_get_async(sidecar, "/healthz")
            assert status == 503 and "app.state_dir" in body and error in body, body
            status, body = await ops_get_async(sidecar, "/readyz")
            assert status == 200, "the plugin API still serves: readiness stays"
            assert metric_value(sidecar, "sidecar_janitor_journal_writable") == 0
            assert metric_value(sidecar, 'sidecar_offload_deletes_total{outcome="not_recorded"}')
        finally:
            repair()
        # Writable again: health recovers (checked every 10 s) and what only memory
        # held is written.
        await poll(
            "/healthz to recover",
            lambda: ops_get_async(sidecar, "/healthz"),
            lambda answer: answer[0] == 200,
            timeout=40,
        )
        assert uid in journal(state)["pending"]
        assert uid in journal(state)["tombstones"]
        set_hold(control_plane, uid, held=False)
        await poll(
            "the janitor to finish the delete",
            lambda: asyncio.to_thread(remote_pods, control_plane, uid),
            lambda pods: pods == [],
            timeout=60,
        )
        await poll(
            "the journal to be emptied",
            lambda: asyncio.to_thread(journal, state),
            lambda data: data["pending"] == {},
            timeout=30,
        )
        assert sidecar.stop() == 0


# --- a poisoned journal ---------------------------------------------------------------------


async def test_a_poisoned_journal_on_start_is_cleaned_not_fatal(
    start_sidecar: StartSidecar, control_plane: LocalCluster, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = start_sidecar(state_dir=state)
    uid = str(uuid.uuid4())
    spec = {"containers": [podshapes.container("main")]}
    code, answer = await call(
        first, "POST", "/create", podshapes.body(podshapes.pod(uid, f"good-{uid[:8]}", spec))
    )
    assert code == 200, answer
    assert first.stop() == 0

    # What the hostile test left behind (a 10 MB uid), and other kinds of poison, next
    # to one good entry: the delete of the pod just offloaded.
    good = {"pod_uid": uid, "namespace": REMOTE_NAMESPACE, "name": "good", "since": 1.0}
    huge = "u" * 10_000_000
    (state / "pending-deletes.json").write_text(
        json.dumps(
            {
                "version": 2,
                "pending": {
                    uid: good,
                    huge: {**good, "pod_uid": huge},
                    "bad-namespace": {**good, "pod_uid": "bad-namespace", "namespace": "A B"},
                    "no-entry": "text",
                },
                "tombstones": {uid: 1.0, huge: 1.0},
            }
        )
    )
    sidecar = start_sidecar(state_dir=state)  # no crash: it gets ready
    await poll(
        "the good entry's pod to be deleted",
        lambda: asyncio.to_thread(remote_pods, control_plane, uid),
        lambda pods: pods == [],
        timeout=60,
    )
    data = await poll(
        "the journal to be emptied",
        lambda: asyncio.to_thread(journal, state),
        lambda data: data["pending"] == {},
    )
    assert huge not in data["tombstones"], "the poison is gone from the file"
    log = sidecar.log()
    dropped = [line for line in log.splitlines() if "dropped the" in line]
    assert len(dropped) == 4, dropped  # three pending entries and one tombstone, once each
    assert any("bad-namespace" in line for line in dropped)
    assert max(len(line) for line in log.splitlines()) < 2000, "no multi-MB log line"
    assert len(log) < 200_000


# --- the retry cap --------------------------------------------------------------------------


async def test_a_delete_that_never_finishes_becomes_a_visible_dead_letter(
    start_sidecar: StartSidecar, control_plane: LocalCluster, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    sidecar = start_sidecar(
        state_dir=state,
        env={"APP_JANITOR_MAX_ATTEMPTS": "3", "APP_JANITOR_MAX_BACKOFF_SECONDS": "0.5"},
    )
    with held_pod(control_plane) as hold:
        held = await offload_held(sidecar, control_plane, hold)
        uid = held["metadata"]["uid"]
        code, answer = await call(sidecar, "POST", "/delete", held)
        assert code == 200 and b"accepted" in answer, answer  # recorded: promised

        await poll(
            "the delete to be given up on",
            lambda: asyncio.to_thread(metric_value, sidecar, "sidecar_janitor_dead_deletes"),
            lambda dead: dead == 1,
            timeout=60,
        )
        status, body = await ops_get_async(sidecar, "/healthz")
        assert status == 200, "a dead letter is shown, not a liveness failure"
        assert "given up on" in body and uid in body and "still terminating" in body, body
        entry = journal(state)["pending"][uid]
        assert entry["dead_since"] > 0 and entry["attempts"] == 3, entry
        assert "still terminating" in entry["last_error"]
        assert metric_value(sidecar, "sidecar_janitor_pending_deletes") == 1

        # The operator removes the blocker; a new /delete of the pod retries at once.
        set_hold(control_plane, uid, held=False)
        code, answer = await call(sidecar, "POST", "/delete", held)
        assert code == 200, answer
        await poll(
            "the revived delete to finish",
            lambda: asyncio.to_thread(journal, state),
            lambda data: data["pending"] == {},
            timeout=60,
        )
    assert metric_value(sidecar, "sidecar_janitor_dead_deletes") == 0
    log = sidecar.log()
    assert log.count("giving up deleting pod") == 1, "logged once"
