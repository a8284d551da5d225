"""Remote API failures: one base type with the facts a caller needs, and a small
hierarchy callers match with ``except`` (as kopf's callers do with its errors).

``RemoteError(status, reason, message)`` builds the subclass its status names, so a
failure is typed wherever it is made: no answer (``RemoteUnreachable``, status 0), the
content refused (``RemoteInvalid``: 400 BadRequest, 422 Invalid), ``RemoteForbidden``
(403: the authorizer, or admission such as PodSecurity and quota), ``RemoteNotFound``
(404), ``RemoteConflict`` (409: AlreadyExists, or a resourceVersion conflict),
``RemoteGone`` (410: a resourceVersion or continue token too old). ``plugin_status``
is the one table from a remote failure to the plugin API's answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

# The authorizer's denial text (k8s.io/apiserver: 'User "<name>" cannot <verb> resource
# "<resource>" in API group ...'); admission denials (PodSecurity, quota) read otherwise.
_RBAC_DENIAL = re.compile(r'cannot [a-z]+ resource "')


class RemoteError(Exception):
    """A remote API call failed: HTTP ``status`` (0: no answer), Kubernetes ``reason``."""

    def __new__(cls, status: int, reason: str = "", message: str = "") -> RemoteError:
        if cls is RemoteError:
            cls = _BY_STATUS.get(status, RemoteError)
        return super().__new__(cls)

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
        return isinstance(self, RemoteNotFound)

    @property
    def already_exists(self) -> bool:
        return isinstance(self, RemoteConflict) and self.reason == "AlreadyExists"

    def plugin_status(self) -> int:
        """The plugin API's answer for this failure. The remote API server understood
        the request and refused its content (400, 422; 403 from admission: PodSecurity,
        quota): the caller's or the pod's fault, 422, never retried. 404: what the
        request names is not there. No answer: 503. Anything else (401, an RBAC 403:
        the sidecar's credentials; 409, 429, 5xx): the remote side failed, 502."""
        return 502


class RemoteUnreachable(RemoteError):
    def plugin_status(self) -> int:
        return 503


class RemoteInvalid(RemoteError):
    def plugin_status(self) -> int:
        return 422


class RemoteForbidden(RemoteError):
    @property
    def by_rbac(self) -> bool:
        """Refused by the authorizer (the sidecar's credentials), not by admission."""
        return _RBAC_DENIAL.search(self.message) is not None

    def plugin_status(self) -> int:
        return 502 if self.by_rbac else 422


class RemoteNotFound(RemoteError):
    def plugin_status(self) -> int:
        return 404


class RemoteConflict(RemoteError):
    pass


class RemoteGone(RemoteError):
    pass


_BY_STATUS: dict[int, type[RemoteError]] = {
    0: RemoteUnreachable,
    400: RemoteInvalid,
    403: RemoteForbidden,
    404: RemoteNotFound,
    409: RemoteConflict,
    410: RemoteGone,
    422: RemoteInvalid,
}
