"""Remote API failures as one exception type with the facts a caller needs."""

from __future__ import annotations

import json
from typing import Any


class RemoteError(Exception):
    """A remote API call failed: HTTP ``status`` (0: no answer), Kubernetes ``reason``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}" if status else message)

    @classmethod
    def from_body(cls, status: int, body: bytes) -> RemoteError:
        """From a Kubernetes ``Status`` body (falls back to the raw text)."""
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return cls(status, str(parsed.get("reason") or ""), str(parsed.get("message") or ""))
        return cls(status, "", body.decode("utf-8", "replace")[:500])

    @classmethod
    def unreachable(cls, exc: BaseException) -> RemoteError:
        """No answer at all (connection refused, reset, timed out): status 0."""
        return cls(0, "Unreachable", f"remote API server unreachable: {exc!r}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"
