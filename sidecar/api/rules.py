"""Kubernetes' own rules for the identifiers the sidecar takes from a request.

Why this exists: the local pod's uid becomes a label value and a label selector
(``interlink.io/source.pod_uid``), its namespace a URL path segment and part of a remote
namespace name, its name part of every remote object name; and a ``/delete`` is
journalled (and retried until it succeeds) before anything is sent. A value the remote
API server refuses (a uid that is not a label value, the namespace ``..``, a 10 MB uid)
must be refused here with a 422 naming the field, or it comes back as a 502, or sits in
the journal for ever. The rules are k8s.io/apimachinery's pkg/util/validation, the ones
the local API server applied to the pod in the first place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.core.shape import WireError, preview

# IsValidLabelValue: empty, or at most 63 characters of [-A-Za-z0-9_.] that start and
# end with an alphanumeric character.
LABEL_VALUE_MAX = 63
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
# IsDNS1123Label (namespaces, container names): at most 63 characters of [a-z0-9-],
# alphanumeric at both ends.
DNS_LABEL_MAX = 63
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
# IsDNS1123Subdomain (pod names): at most 253 characters, dot-separated DNS labels.
DNS_SUBDOMAIN_MAX = 253
_DNS_SUBDOMAIN = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    max_length: int
    what: str
    """What a value must be, as the refusal says it."""

    def check(self, value: str, path: str) -> str:
        if len(value) > self.max_length or not self.pattern.fullmatch(value):
            raise WireError(
                422, f"{path}: {preview(value)} ({len(value)} characters) is not {self.what}"
            )
        return value


_UID = _Rule(
    _LABEL_VALUE,
    LABEL_VALUE_MAX,
    "a valid pod uid: it is used as a Kubernetes label value (at most 63 characters: "
    "letters, digits, '-', '_', '.', starting and ending with a letter or digit)",
)
_DNS_LABEL_TEXT = (
    "a DNS label (at most 63 characters: lower-case letters, digits and '-', starting and "
    "ending with a letter or digit)"
)
_NAMESPACE = _Rule(_DNS_LABEL, DNS_LABEL_MAX, f"a valid namespace: {_DNS_LABEL_TEXT}")
_CONTAINER_NAME = _Rule(_DNS_LABEL, DNS_LABEL_MAX, f"a valid container name: {_DNS_LABEL_TEXT}")
_POD_NAME = _Rule(
    _DNS_SUBDOMAIN,
    DNS_SUBDOMAIN_MAX,
    "a valid pod name: a DNS subdomain (at most 253 characters: lower-case letters, "
    "digits, '-' and '.', each part starting and ending with a letter or digit)",
)


def check_uid(value: str, path: str) -> str:
    """A pod uid: used as a label value, so it must be one (a UUID always is)."""
    return _UID.check(value, path)


def check_namespace(value: str, path: str) -> str:
    return _NAMESPACE.check(value, path)


def check_pod_name(value: str, path: str) -> str:
    return _POD_NAME.check(value, path)


def check_container_name(value: str, path: str) -> str:
    return _CONTAINER_NAME.check(value, path)
