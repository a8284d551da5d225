"""The pending-delete journal: deletes accepted but not finished, kept across restarts.

``/delete`` is called once by interLink and never retried, and answers 200 even when the
remote cluster is down; the journal is what makes that promise hold. One small JSON file
(``<app.state_dir>/pending-deletes.json``), rewritten atomically (temporary file, fsync,
rename) on every change, so a crash leaves either the old or the new version.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path


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


class DeleteJournal:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "pending-deletes.json"
        self._entries: dict[str, PendingDelete] = {}
        self._write_lock = asyncio.Lock()

    def load(self) -> None:
        """Read the journal (missing: empty). Raises JournalError if unusable."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(self.path.parent, os.W_OK):
                raise JournalError(f"app.state_dir: {self.path.parent} is not writable")
            raw = self.path.read_text() if self.path.exists() else "{}"
            data = json.loads(raw)
            self._entries = {uid: PendingDelete(**entry) for uid, entry in data.items()}
        except JournalError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise JournalError(f"app.state_dir: cannot use {self.path}: {exc}") from None

    def entries(self) -> list[PendingDelete]:
        return list(self._entries.values())

    def __contains__(self, pod_uid: str) -> bool:
        return pod_uid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    async def add(self, pod_uid: str, *, namespace: str, name: str) -> None:
        if pod_uid in self._entries:
            return
        self._entries[pod_uid] = PendingDelete(pod_uid, namespace, name, time.time())
        await self._persist()

    async def remove(self, pod_uid: str) -> None:
        if self._entries.pop(pod_uid, None) is not None:
            await self._persist()

    async def _persist(self) -> None:
        snapshot = {uid: asdict(entry) for uid, entry in self._entries.items()}
        async with self._write_lock:
            await asyncio.to_thread(self._write, json.dumps(snapshot, indent=1))

    def _write(self, text: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)
