"""Value parsers of the settings: raw text (from ``config.ini``, the environment or a
declared default) to a typed value.

Each takes the raw string and returns the value or raises ValueError with a message that
completes ``section.key: <message>`` (the loader adds the key).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import asyncssh

E = TypeVar("E", bound=enum.Enum)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def boolean(raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"expected a positive number of seconds, got {raw!r}")
    return value


def seconds_at_least(minimum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = positive_float(raw)
        if value < minimum:
            raise ValueError(f"expected at least {minimum:g} seconds, got {raw!r}")
        return value

    return parse


def seconds_below(limit: float, why: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = positive_float(raw)
        if value >= limit:
            raise ValueError(f"expected less than {limit:g} seconds ({why}), got {raw!r}")
        return value

    return parse


def text(raw: str) -> str:
    return raw.strip()


def json_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at character {exc.pos})") from None


def json_or_none(raw: str) -> Any:
    return None if not raw.strip() else json_value(raw)


def string_list(raw: str) -> tuple[str, ...]:
    value = json_or_none(raw)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError('expected a JSON list of strings, e.g. ["kube-system"]')
    return tuple(value)


def string_map(raw: str) -> Mapping[str, str]:
    value = json_or_none(raw)
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError('expected a JSON object of strings, e.g. {"nvidia/gpu-model": "T4"}')
    return MappingProxyType(value)


_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
_SNAKE_TOLERATION_KEYS = {"toleration_seconds": "tolerationSeconds"}


def tolerations(raw: str) -> tuple[Mapping[str, Any], ...]:
    value = json_or_none(raw)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError("expected a JSON list of toleration objects")
    result = []
    for index, item in enumerate(value):
        # Upstream passed these as kwargs to V1Toleration, so snake_case worked there.
        item = {_SNAKE_TOLERATION_KEYS.get(k, k): v for k, v in item.items()}
        unknown = sorted(set(item) - _TOLERATION_KEYS)
        if unknown:
            raise ValueError(f"toleration [{index}] has unknown field(s) {', '.join(unknown)}")
        result.append(MappingProxyType(item))
    return tuple(result)


def kubeconfig(raw: str) -> Mapping[str, Any] | None:
    value = json_or_none(raw)
    if value is not None and not isinstance(value, dict):
        raise ValueError("expected a JSON object (a kubeconfig)")
    return None if value is None else MappingProxyType(value)


# Attributes of kubernetes_asyncio's Configuration that make sense to set from config.
_CLIENT_CONFIGURATION_KEYS = {
    "host",
    "verify_ssl",
    "ssl_ca_cert",
    "cert_file",
    "key_file",
    "assert_hostname",
    "tls_server_name",
    "proxy",
    "proxy_headers",
    "connection_pool_maxsize",
}


def client_configuration(raw: str) -> Mapping[str, Any]:
    value = json_or_none(raw)
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise ValueError('expected a JSON object, e.g. {"verify_ssl": false}')
    unknown = sorted(set(value) - _CLIENT_CONFIGURATION_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_CLIENT_CONFIGURATION_KEYS))
        raise ValueError(f"unknown attribute(s) {', '.join(unknown)} (allowed: {allowed})")
    return MappingProxyType(value)


def port_range(raw: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", raw)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)) <= 65535:
        raise ValueError(f"expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535, got {raw!r}")
    return int(match.group(1)), int(match.group(2))


def ciphers(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    # asyncssh's default set: the weak ciphers it supports but does not offer stay out.
    known = {alg.decode() for alg in asyncssh.encryption.get_default_encryption_algs()}
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise ValueError(
            f"expected a comma-separated list of SSH ciphers from {', '.join(sorted(known))}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    return names


def words(raw: str) -> tuple[str, ...]:
    return tuple(raw.split())


def k8s_version(raw: str) -> str:
    version = raw.strip().lstrip("v")
    if version and not re.fullmatch(r"1\.\d+(\.\d+)?", version):
        raise ValueError(f"expected a Kubernetes version such as 1.35, got {raw!r}")
    return version


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def namespace_prefix(raw: str) -> str:
    prefix = raw.strip()
    if prefix and (len(prefix) > 40 or not DNS_LABEL.match(prefix)):
        raise ValueError(
            f"{prefix!r} is not a lower-case DNS label of at most 40 characters "
            "(it becomes part of remote namespace names)"
        )
    return prefix


def namespace_patterns(raw: str) -> tuple[str, ...]:
    patterns = string_list(raw)
    for pattern in patterns:
        name, wildcard = (pattern[:-1], True) if pattern.endswith("*") else (pattern, False)
        valid = (
            re.fullmatch(r"([a-z0-9][-a-z0-9]*)?", name) is not None
            if wildcard
            else DNS_LABEL.match(name) is not None
        )
        if not valid or len(pattern) > 63:
            raise ValueError(
                f"{pattern!r} is neither a namespace name nor a prefix ending in * "
                '(e.g. "kube-system", "kube-*")'
            )
    return patterns


def octal_mode(raw: str) -> int:
    try:
        mode = int(raw.strip(), 8)
    except ValueError:
        raise ValueError(f"expected an octal file mode such as 0660, got {raw!r}") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"expected an octal file mode such as 0660, got {raw!r}")
    return mode


def socket_addresses(raw: str) -> tuple[str, ...]:
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not entries:
        raise ValueError("required: unix:///path/to.sock and/or http://host")
    for entry in entries:
        if entry.startswith("unix://"):
            if not entry[len("unix://") :].startswith("/"):
                raise ValueError(f"{entry!r}: a unix socket needs an absolute path (unix:///...)")
        elif entry.startswith("http://"):
            host = entry[len("http://") :].rstrip("/")
            if not host:
                raise ValueError(f"{entry!r}: missing host")
            if "/" in host:
                raise ValueError(f"{entry!r}: no path allowed")
            if re.search(r":\d+$", host) and not host.endswith("]"):
                raise ValueError(f"{entry!r}: put the port in app.socket_port, not in the URL")
        elif entry.startswith("https://"):
            raise ValueError(
                f"{entry!r}: interLink talks to its plugin over plain http:// or unix:// only"
            )
        else:
            raise ValueError(f"{entry!r}: expected unix:///path or http://host")
    return entries


def choice(kind: type[E]) -> Callable[[str], E]:
    """One member of ``kind``, by value, case-insensitive; the error lists the allowed ones."""
    members = {str(member.value).lower(): member for member in kind}

    def parse(raw: str) -> E:
        member = members.get(raw.strip().lower())
        if member is None:
            allowed = ", ".join(str(m.value) for m in kind)
            raise ValueError(f"expected one of {allowed}, got {raw!r}")
        return member

    return parse
