"""The delete journal: deletes accepted but not finished, and tombstones of deleted pods.

``/delete`` is called once by interLink and never retried, and answers 200 even when the
remote cluster is down; the journal is what makes that promise hold. interLink also
sends ``/create`` and ``/delete`` of one pod from separate goroutines, so a delete can
arrive before (or during) its own create: the journal keeps a *tombstone* of every pod
uid deleted through ``/delete`` for ``app.delete_tombstone_seconds``, and a create of a
tombstoned uid writes nothing (``sidecar.offload.service``). Tombstones are kept across
restarts too: the late create may come after one.

One small JSON file (``<app.state_dir>/pending-deletes.json``), rewritten atomically
(temporary file, fsync, rename) on every change, so a crash leaves either the old or the
new version. Format: ``{"version": 2, "pending": {uid: entry}, "tombstones": {uid:
deleted_at}}``; the first format (a flat ``{uid: entry}`` map) is still read, its
entries count as pending and tombstoned.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_FORMAT_VERSION = 2


@dataclass(frozen=True, slots=True)
class PendingDelete:
    pod_uid: str
    namespace: str
    """Remote namespace."""
    name: str
    """Local pod name (for logs)."""
    since: float
    """Wall-clock time the delete was accepted."""


class JournalError(Exception):
    """The journal cannot be read or written; names the file and ``app.state_dir``."""


def _parse(data: Any) -> tuple[dict[str, PendingDelete], dict[str, float]]:
    if not isinstance(data, dict):
        raise TypeError("expected a JSON object")
    if data.get("version") == _FORMAT_VERSION:
        pending = {uid: PendingDelete(**entry) for uid, entry in data["pending"].items()}
        tombstones = {uid: float(at) for uid, at in data["tombstones"].items()}
        return pending, tombstones
    pending = {uid: PendingDelete(**entry) for uid, entry in data.items()}
    return pending, {uid: entry.since for uid, entry in pending.items()}


class DeleteJournal:
    def __init__(
        self,
        directory: Path,
        *,
        tombstone_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = directory / "pending-deletes.json"
        self._clock = clock
        self.tombstone_seconds = tombstone_seconds
        self._entries: dict[str, PendingDelete] = {}
        self._tombstones: OrderedDict[str, float] = OrderedDict()
        """uid -> wall-clock time of its /delete; oldest first (cheap to drop from)."""
        self._write_lock = asyncio.Lock()

    def load(self) -> None:
        """Read the journal (missing: empty). Raises JournalError if unusable."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(self.path.parent, os.W_OK):
                raise JournalError(f"app.state_dir: {self.path.parent} is not writable")
            raw = self.path.read_text() if self.path.exists() else "{}"
            self._entries, tombstones = _parse(json.loads(raw))
            self._tombstones = OrderedDict(sorted(tombstones.items(), key=lambda item: item[1]))
            self._expire()
        except JournalError:
            raise
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise JournalError(f"app.state_dir: cannot use {self.path}: {exc}") from None

    # --- pending deletes ------------------------------------------------------------------

    def entries(self) -> list[PendingDelete]:
        return list(self._entries.values())

    def __contains__(self, pod_uid: str) -> bool:
        return pod_uid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    async def add(self, pod_uid: str, *, namespace: str, name: str, tombstone: bool) -> None:
        """Record a delete to finish; ``tombstone``: it came from ``/delete`` (the pod is
        gone locally, so a later create of this uid must write nothing). A rollback's
        leftovers are not a tombstone: the same create may be repeated."""
        changed = False
        if pod_uid not in self._entries:
            self._entries[pod_uid] = PendingDelete(pod_uid, namespace, name, self._clock())
            changed = True
        if tombstone and pod_uid not in self._tombstones:
            self._tombstones[pod_uid] = self._clock()
            changed = True
        if changed:
            await self._persist()

    async def remove(self, pod_uid: str) -> None:
        """The delete is finished (its tombstone stays until it expires)."""
        if self._entries.pop(pod_uid, None) is not None:
            await self._persist()

    # --- tombstones ------------------------------------------------------------------------

    def deleted_at(self, pod_uid: str) -> float | None:
        """When ``/delete`` accepted this uid, if within ``tombstone_seconds``."""
        at = self._tombstones.get(pod_uid)
        if at is None or at < self._clock() - self.tombstone_seconds:
            return None
        return at

    def tombstones(self) -> int:
        return len(self._tombstones)

    def _expire(self) -> None:
        cutoff = self._clock() - self.tombstone_seconds
        while self._tombstones and next(iter(self._tombstones.values())) < cutoff:
            self._tombstones.popitem(last=False)

    async def _persist(self) -> None:
        self._expire()
        snapshot = {
            "version": _FORMAT_VERSION,
            "pending": {uid: asdict(entry) for uid, entry in self._entries.items()},
            "tombstones": dict(self._tombstones),
        }
        async with self._write_lock:
            await asyncio.to_thread(self._write, json.dumps(snapshot, indent=1))

    def _write(self, text: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)
