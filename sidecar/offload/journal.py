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
deleted_at}}``; an entry is ``{"pod_uid", "namespace", "name", "since"}``, plus
``"dead_since"``, ``"attempts"`` and ``"last_error"`` once the janitor gave up on it
(the dead-letter state, see ``sidecar.offload.janitor``). The first format (a flat
``{uid: entry}`` map) is still read, its entries count as pending and tombstoned.

The journal defends itself (it is read back after every restart, so one bad entry
would otherwise be retried for ever):

* every entry is checked, when added and when loaded: the uid is a Kubernetes label
  value (the janitor selects the pod's objects by it) and the namespace a DNS label
  (``add`` raises ``InvalidEntry``; a bad entry in the file is dropped with one
  WARNING naming it, clipped, and the file is rewritten without it); the local name is
  only for logs and is clipped instead of refused;
* a file that is not JSON at all (or absurdly large) is moved aside to
  ``pending-deletes.json.unreadable-<time>`` with an ERROR, and the journal starts
  empty: the orphan sweeps find what its entries would have deleted;
* a write that fails (full disk, read-only volume) never loses what memory holds:
  ``add`` answers whether the change is on disk, ``problem`` says why not (``/healthz``
  turns 503 with it), and ``check`` (called by the janitor every few seconds) writes
  again, or probes the directory when nothing is waiting, until a write works.

A directory that is not usable at start (missing and cannot be made, not writable) is
a ``JournalError``: the process exits 2, where the operator looks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from sidecar.core.shape import PluginError, WireError

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 2
_MAX_FILE_BYTES = 64 * 1024 * 1024
"""Larger than any real journal (10,000 tombstones are about 600 kB): set aside unread."""
_MAX_LOAD_WARNINGS = 20
"""Bad entries named one by one on load; the rest are counted in one more line."""
_CLIP = 80
ERROR_CLIP = 300
"""Longest remote error text kept with an entry (and logged with it)."""

# Kubernetes' own rules (k8s.io/apimachinery validation): a label value is at most 63
# characters, alphanumerics at both ends, '-', '_' and '.' inside; a namespace is an
# RFC 1123 DNS label; a pod name an RFC 1123 DNS subdomain.
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_MAX_NAME = 253


def clip(text: str, limit: int = _CLIP) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: a log line or a
    message must never carry a multi-megabyte value a caller sent."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text)} characters)"


class JournalError(Exception):
    """The journal cannot be used at all; names the file and ``app.state_dir``."""


class InvalidEntry(WireError):
    """An entry the journal refuses: its uid or namespace breaks Kubernetes' rules. A
    caller's mistake (the edge checks it first; the journal defends itself): 422."""

    def __init__(self, message: str) -> None:
        super().__init__(422, message)


class DeleteNotRecorded(PluginError):
    """A delete that did not finish at once and could not be written to the journal:
    the caller must not promise it (``/delete`` answers 503 with ``message``)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


def check_uid(pod_uid: object) -> None:
    """Raise InvalidEntry unless ``pod_uid`` is a Kubernetes label value."""
    if not isinstance(pod_uid, str) or not _LABEL_VALUE.fullmatch(pod_uid):
        raise InvalidEntry(
            f"pod uid {clip(repr(pod_uid))} is not a Kubernetes label value "
            "(at most 63 characters: letters, digits, '-', '_', '.'; alphanumeric at both ends)"
        )


def check_identity(pod_uid: object, namespace: object) -> None:
    """Raise InvalidEntry unless ``pod_uid`` is a label value and ``namespace`` a DNS label."""
    check_uid(pod_uid)
    if not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace):
        raise InvalidEntry(
            f"namespace {clip(repr(namespace))} is not a DNS label "
            "(at most 63 characters: lower-case letters, digits, '-')"
        )


def _log_name(name: object) -> str:
    """The local pod name kept for logs: printable and at most 253 characters."""
    text = name if isinstance(name, str) else repr(name)
    text = "".join(c if c.isprintable() else "?" for c in text[:_MAX_NAME])
    return text or "?"


def _when(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidEntry(f"time {clip(repr(value))} is not a number of seconds")
    return float(value)


@dataclass(frozen=True, slots=True)
class PendingDelete:
    pod_uid: str
    namespace: str
    """Remote namespace."""
    name: str
    """Local pod name (for logs)."""
    since: float
    """Wall-clock time the delete was accepted."""
    dead_since: float | None = None
    """Wall-clock time the janitor gave up on it (dead-letter); None while retried."""
    attempts: int = 0
    """Attempts the remote API server answered without the delete finishing. Kept in
    memory only (a write per attempt would be the journal's main load), except in a
    dead entry, where it says how many there were."""
    last_error: str = ""
    """Why the last attempt did not finish (clipped to ``ERROR_CLIP``)."""

    @property
    def dead(self) -> bool:
        return self.dead_since is not None

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "pod_uid": self.pod_uid,
            "namespace": self.namespace,
            "name": self.name,
            "since": self.since,
        }
        if self.dead_since is not None:
            entry |= {
                "dead_since": self.dead_since,
                "attempts": self.attempts,
                "last_error": self.last_error,
            }
        return entry

    @classmethod
    def from_json(cls, key: str, entry: object) -> PendingDelete:
        """One journal entry; raises InvalidEntry naming what is wrong."""
        if not isinstance(entry, dict):
            raise InvalidEntry("not a JSON object")
        uid = entry.get("pod_uid", key)
        if uid != key:
            raise InvalidEntry(f"pod_uid {clip(repr(uid))} differs from its key")
        check_identity(uid, entry.get("namespace"))
        dead_since = entry.get("dead_since")
        attempts = entry.get("attempts", 0)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise InvalidEntry(f"attempts {clip(repr(attempts))} is not a count")
        return cls(
            pod_uid=uid,
            namespace=entry["namespace"],
            name=_log_name(entry.get("name", "")),
            since=_when(entry.get("since")),
            dead_since=None if dead_since is None else _when(dead_since),
            attempts=attempts,
            last_error=clip(str(entry.get("last_error", "")), ERROR_CLIP),
        )


class _Dropped:
    """Bad entries found while loading: the first few named in a WARNING each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0

    def drop(self, what: str, key: object, why: str) -> None:
        self.count += 1
        if self.count <= _MAX_LOAD_WARNINGS:
            logger.warning(
                "journal %s: dropped the %s entry %s: %s", self.path, what, clip(repr(key)), why
            )

    def summary(self) -> None:
        if self.count > _MAX_LOAD_WARNINGS:
            logger.warning(
                "journal %s: dropped %d more bad entries",
                self.path,
                self.count - _MAX_LOAD_WARNINGS,
            )


def _parse(data: Any, dropped: _Dropped) -> tuple[dict[str, PendingDelete], dict[str, float]]:
    if not isinstance(data, dict):
        raise InvalidEntry("not a JSON object of at most 64 MiB")
    if data.get("version") == _FORMAT_VERSION:
        raw_pending, raw_tombstones = data.get("pending"), data.get("tombstones")
        if not isinstance(raw_pending, dict):
            dropped.drop("pending", "pending", "not a JSON object: every pending entry lost")
            raw_pending = {}
        if not isinstance(raw_tombstones, dict):
            dropped.drop("tombstones", "tombstones", "not a JSON object: every tombstone lost")
            raw_tombstones = {}
    else:  # the first format: {uid: entry}, each pending and tombstoned
        raw_pending, raw_tombstones = data, None
    pending: dict[str, PendingDelete] = {}
    for key, entry in raw_pending.items():
        try:
            pending[key] = PendingDelete.from_json(key, entry)
        except (InvalidEntry, KeyError) as exc:
            dropped.drop("pending", key, str(exc))
    if raw_tombstones is None:
        return pending, {uid: entry.since for uid, entry in pending.items()}
    tombstones: dict[str, float] = {}
    for key, at in raw_tombstones.items():
        try:
            check_uid(key)
            tombstones[key] = _when(at)
        except InvalidEntry as exc:
            dropped.drop("tombstone", key, str(exc))
    return pending, tombstones


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
        self._dirty = False
        """Memory holds changes the file does not (the last write failed)."""
        self.problem: str | None = None
        """Why the journal cannot be written right now (None: the last write worked)."""

    def load(self) -> None:
        """Read the journal (missing: empty), dropping bad entries; raises JournalError
        if the directory cannot be written."""
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._probe()
        except OSError as exc:
            raise JournalError(f"app.state_dir: {directory} is not writable: {exc}") from None
        dropped = _Dropped(self.path)
        try:
            data = self._read()
        except OSError as exc:
            raise JournalError(f"app.state_dir: cannot read {self.path}: {exc}") from None
        try:
            self._entries, tombstones = _parse(data, dropped)
        except InvalidEntry as exc:
            self._set_aside(str(exc))
            self._entries, tombstones = {}, {}
        dropped.summary()
        self._tombstones = OrderedDict(sorted(tombstones.items(), key=lambda item: item[1]))
        self._expire()
        if dropped.count:
            try:
                self._write(self._text())  # the file no longer holds what was dropped
            except OSError as exc:
                raise JournalError(f"app.state_dir: cannot rewrite {self.path}: {exc}") from None

    def _read(self) -> Any:
        if not self.path.exists():
            return {}
        if self.path.stat().st_size > _MAX_FILE_BYTES:
            return None  # not a journal this process wrote: set aside below
        try:
            return json.loads(self.path.read_bytes())
        except ValueError:
            return None

    def _set_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
        try:
            self.path.replace(aside)
        except OSError as exc:
            raise JournalError(f"app.state_dir: cannot move {self.path} aside: {exc}") from None
        logger.error(
            "journal %s is unreadable (%s): moved to %s; starting with no pending deletes "
            "(the orphan sweeps find what they would have deleted)",
            self.path,
            why,
            aside,
        )

    # --- pending deletes ------------------------------------------------------------------

    def entries(self) -> list[PendingDelete]:
        return list(self._entries.values())

    def get(self, pod_uid: str) -> PendingDelete | None:
        return self._entries.get(pod_uid)

    def dead(self) -> list[PendingDelete]:
        """Entries the janitor gave up on, oldest first."""
        return sorted((e for e in self._entries.values() if e.dead), key=lambda e: e.since)

    def dead_count(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.dead)

    def __contains__(self, pod_uid: str) -> bool:
        return pod_uid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    async def add(self, pod_uid: str, *, namespace: str, name: str, tombstone: bool) -> bool:
        """Record a delete to finish; ``tombstone``: it came from ``/delete`` (the pod is
        gone locally, so a later create of this uid must write nothing). A rollback's
        leftovers are not a tombstone: the same create may be repeated.

        Returns whether the entry is on disk (False: memory only, ``problem`` says why);
        raises InvalidEntry, before changing anything, for a uid or namespace that
        breaks Kubernetes' rules.
        """
        check_identity(pod_uid, namespace)
        changed = False
        existing = self._entries.get(pod_uid)
        if existing is None or (existing.dead and tombstone):
            # New, or a /delete again for one given up on: retried afresh.
            self._entries[pod_uid] = PendingDelete(
                pod_uid, namespace, _log_name(name), self._clock()
            )
            changed = True
        if tombstone and pod_uid not in self._tombstones:
            self._tombstones[pod_uid] = self._clock()
            changed = True
        if changed or self._dirty:
            return await self._persist()
        return True

    async def remove(self, pod_uid: str) -> None:
        """The delete is finished (its tombstone stays until it expires). A failed
        write is recorded in ``problem``, not raised: the delete is done either way,
        and the janitor's ``check`` writes the file again."""
        if self._entries.pop(pod_uid, None) is not None:
            await self._persist()

    def note_failure(self, pod_uid: str, why: str, *, answered: bool) -> None:
        """An attempt did not finish the delete; ``answered``: the remote API server
        answered (so it counts toward ``app.janitor_max_attempts``; an unreachable
        server is an outage, which the journal exists to wait out). Memory only."""
        entry = self._entries.get(pod_uid)
        if entry is not None:
            self._entries[pod_uid] = replace(
                entry,
                attempts=entry.attempts + (1 if answered else 0),
                last_error=clip(why, ERROR_CLIP),
            )

    async def mark_dead(self, pod_uid: str) -> PendingDelete | None:
        """Give up retrying: the entry stays in the file, marked dead, for the operator."""
        entry = self._entries.get(pod_uid)
        if entry is None or entry.dead:
            return entry
        self._entries[pod_uid] = entry = replace(entry, dead_since=self._clock())
        await self._persist()
        return entry

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

    # --- the file --------------------------------------------------------------------------

    async def check(self) -> None:
        """Is the journal writable? Writes what only memory holds, else probes the
        directory (a small file written, synced and removed); updates ``problem``."""
        if self._dirty or self.problem is not None:
            await self._persist()
            return
        async with self._write_lock:
            try:
                await asyncio.to_thread(self._probe)
            except OSError as exc:
                self._failed(exc)

    def _text(self) -> bytes:
        """The whole journal, as written. Rewritten on every change, tombstones included
        (one per delete of the last ``tombstone_seconds``): orjson, because the standard
        encoder took a quarter of the sidecar's CPU in a burst of 600 deletes."""
        snapshot = {
            "version": _FORMAT_VERSION,
            "pending": {uid: entry.as_json() for uid, entry in self._entries.items()},
            "tombstones": self._tombstones,
        }
        try:
            return orjson.dumps(snapshot, option=orjson.OPT_INDENT_2)
        except orjson.JSONEncodeError:  # what orjson refuses (a lone surrogate), json takes
            return json.dumps(snapshot, indent=1).encode()

    async def _persist(self) -> bool:
        """Write the current state; True when the file holds every change made so far.
        The snapshot is taken under the lock, so concurrent callers share one write."""
        self._dirty = True
        async with self._write_lock:
            if not self._dirty:
                return self.problem is None  # a write under the lock just took our change
            self._expire()
            text = self._text()
            self._dirty = False
            try:
                await asyncio.to_thread(self._write, text)
            except OSError as exc:
                self._dirty = True
                self._failed(exc)
                return False
            if self.problem is not None:
                logger.warning("journal %s is writable again: every change saved", self.path)
                self.problem = None
            return True

    def _failed(self, exc: OSError) -> None:
        if self.problem is None:
            logger.error(
                "journal %s cannot be written (%s): deletes that do not finish at once are "
                "answered 503, and /healthz fails until a write works again",
                self.path,
                exc,
            )
        self.problem = f"app.state_dir: cannot write the journal {self.path}: {exc}"

    def _write(self, text: bytes) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            with tmp.open("wb") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a partial file must not hold the last free blocks
            raise

    def _probe(self) -> None:
        probe = self.path.with_name(".write-check")
        try:
            with probe.open("w") as handle:
                handle.write("ok\n")
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            probe.unlink(missing_ok=True)
