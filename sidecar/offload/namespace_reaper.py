"""The namespace reaper: our remote namespaces are deleted once nothing of ours is left
in them, decided at most once per window per namespace.

Deciding per deleted pod cost every delete a namespace read and four LISTs (and a burst
of deletes ended with the same namespace deleted five times over). A finished delete
now only *notes* its namespace here. This loop looks at a noted namespace no sooner
than ``window`` seconds after it last looked at it: when the status cache (confirmed by
a healthy watch) still holds a pod of ours there, nothing is read (the delete that
finishes the last of them notes the namespace again); otherwise the check reads the
namespace and at most one object per kind (``Cleaner.delete_namespace_if_empty``).

Contract: ``run_forever`` runs until cancelled and never raises; a check that fails is
logged and the namespace looked at again in the next window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from sidecar.remote.errors import RemoteError
from sidecar.status.cache import StatusCache

logger = logging.getLogger(__name__)

NAMESPACE_WINDOW_SECONDS = 2.0
"""At most one emptiness check per namespace in this many seconds."""


class NamespaceReaper:
    def __init__(
        self,
        check: Callable[[str], Awaitable[None]],
        cache: StatusCache,
        *,
        window: float = NAMESPACE_WINDOW_SECONDS,
    ) -> None:
        self._check = check
        """Deletes the namespace if it is ours and empty of our objects."""
        self._cache = cache
        self._window = window
        self._noted: set[str] = set()
        self._checked_at: dict[str, float] = {}
        """Monotonic time of the last check per namespace (pruned after a window)."""
        self._wakeup = asyncio.Event()

    def note(self, namespace: str) -> None:
        """A delete in ``namespace`` finished: it may be empty now."""
        self._noted.add(namespace)
        self._wakeup.set()

    def _in_use(self) -> set[str]:
        """Namespaces holding a pod of ours, by the cache when it is confirmed (it knows
        every one; one pod is enough). A cheap filter only: the check itself reads the
        remote namespace, so a pod created after this look is never deleted with it."""
        if not self._cache.confirmed:
            return set()
        return {(pod.get("metadata") or {}).get("namespace", "") for pod in self._cache.pods()}

    async def run_forever(self) -> None:
        while True:
            self._wakeup.clear()
            now = time.monotonic()
            for namespace, at in list(self._checked_at.items()):
                if now - at >= self._window:
                    del self._checked_at[namespace]
            due = sorted(ns for ns in self._noted if ns not in self._checked_at)
            in_use = self._in_use() if due else set()  # one pass over the cache per pass
            for namespace in due:
                self._noted.discard(namespace)
                if namespace in in_use:
                    continue
                self._checked_at[namespace] = time.monotonic()
                try:
                    await self._check(namespace)
                except RemoteError as exc:
                    logger.warning("namespace %s not checked for removal: %s", namespace, exc)
                    self._noted.add(namespace)
                except Exception:  # the reaper must not end: logged, looked at again
                    logger.exception("checking namespace %s for removal failed", namespace)
                    self._noted.add(namespace)
            # Noted ones wait for their window; checked ones are forgotten after it.
            timeout = self._window if self._noted or self._checked_at else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
