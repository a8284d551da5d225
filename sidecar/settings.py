"""One frozen settings tree, read from ``config.ini`` and the environment, validated at start.

Why this module exists: the upstream plugin read its configuration lazily, so a typo in a
JSON value surfaced on the first request (and every later one), not at start. Here every
key is parsed once, all problems are collected and reported together, each with its key
name, and the process exits with status 2 (see ``sidecar.__main__``).

Rules (kept from upstream so existing deployments keep working):

* the file is an INI file with the sections ``app``, ``log``, ``k8s``, ``offloading``,
  ``mesh`` and ``tcp_tunnel``; its path comes from ``--config`` or ``CONFIG_FILE_PATH``;
* every key can be overridden by an environment variable named ``SECTION_KEY`` in upper
  case (``app.socket_port`` -> ``APP_SOCKET_PORT``); the environment wins over the file;
* booleans are ``true``/``false`` (also ``1/0``, ``yes/no``, ``on/off``), JSON values are
  JSON.

Differences from upstream: an unknown key in the file is an error (upstream ignored it);
a missing file named explicitly is an error; ``https://`` and ``host:port`` in
``app.socket_address`` are refused instead of silently serving plain HTTP or failing to
bind. Nothing below this module reads ``os.environ``.
"""

from __future__ import annotations

import configparser
import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import asyncssh

__all__ = [
    "AppSettings",
    "K8sSettings",
    "ListenAddress",
    "LogSettings",
    "MeshSettings",
    "OffloadingSettings",
    "Settings",
    "SettingsError",
    "TcpTunnelSettings",
    "load",
]

# Remote namespaces refused by default: the remote cluster's own system namespaces.
DEFAULT_NAMESPACE_DENY = ("kube-system", "kube-public", "kube-node-lease")
# The downward-API variable that tells the sidecar its own namespace (not a config key:
# it describes where the process runs, not how it should behave).
OWN_NAMESPACE_ENV = "POD_NAMESPACE"

DEFAULT_TUNNEL_CIPHERS = (
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
)


class SettingsError(Exception):
    """Every problem found in the configuration, each line naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ListenKind(enum.Enum):
    UNIX = "unix"
    TCP = "tcp"


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenAddress:
    """Where the plugin API listens: a unix socket path or a TCP host and port."""

    kind: ListenKind
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def url(self) -> str:
        """The address in interLink's ``SidecarURL`` notation."""
        if self.kind is ListenKind.UNIX:
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AppSettings:
    name: str
    """Application name, used in logs and the build-info metric."""
    version: str
    """Version string reported in the build-info metric."""
    listen: tuple[ListenAddress, ...]
    """Plugin API listeners, from ``app.socket_address`` (comma list) and ``app.socket_port``."""
    socket_mode: int
    """File mode of the unix socket. 0660: the interLink API server in the same group
    may connect, nobody else (the plugin API has no authentication by design)."""
    ops_address: str
    """Host of the ops server (``/healthz``, ``/readyz``, ``/metrics``)."""
    ops_port: int
    """Port of the ops server; 0 picks a free port (logged at start)."""
    shutdown_timeout_seconds: float
    """Budget for the whole SIGTERM ladder. Below Kubernetes' default 30 s grace period."""
    state_dir: str
    """Directory for the small journal of deletes still to finish (survives restarts)."""
    janitor_max_backoff_seconds: float
    """Longest wait between two attempts to finish a delete the remote cluster refused."""
    janitor_max_attempts: int = 100
    """Attempts the remote API server answered without the delete finishing (a
    finalizer that never goes, a permission missing) after which the janitor gives up:
    the entry stays in the journal marked dead (dead-letter), counted and shown in
    ``/healthz``, and is tried again only hourly. Attempts while the remote server is
    unreachable do not count: the journal exists to wait out outages."""
    delete_give_up_seconds: float = 86400.0
    """Age of a journalled delete after which the janitor gives up on it (dead-letter),
    however its attempts went (once this process tried it 10 times: a remote cluster
    gone for good is unreachable, which the attempt cap does not count)."""
    request_header_timeout_seconds: float = 15.0
    """A plugin API connection that has not sent a whole request line and headers this
    long after it opened (or after its previous answer) is closed: half-sent requests
    cannot hold connections."""
    request_body_timeout_seconds: float = 60.0
    """Time a client has to send a request body once its headers arrived; then 408."""
    max_concurrent_requests: int = 512
    """Plugin API requests handled at once; beyond, 503 with Retry-After at once."""
    create_deadline_seconds: float = 100.0
    """Longest a ``/create`` may take before it is abandoned (504) and what it wrote is
    removed. Below interLink's 120 s client timeout, so it hears our answer, not its
    own timeout, and nothing is left that it does not know about."""
    delete_tombstone_seconds: float
    """How long a deleted pod uid is remembered (in memory and in the journal) so that a
    ``/create`` of it arriving late (interLink sends create and delete from goroutines,
    so a delete can overtake its create) is refused instead of offloading a pod nobody
    will ever delete."""


# The [app] keys that are AppSettings fields as they are (socket_address and
# socket_port become ``listen``; the upstream-only keys are ignored).
_APP_FIELDS = frozenset(f.name for f in fields(AppSettings)) - {"listen"}


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    level: str
    """Root log level name (DEBUG, INFO, WARNING, ERROR)."""
    requests_enabled: bool
    """Log one line per plugin API request (method, path, status, duration). Bodies are
    never logged: they carry Secret data and service-account tokens."""


@dataclass(frozen=True, slots=True, kw_only=True)
class K8sSettings:
    kubeconfig_path: str
    """Remote cluster kubeconfig file (relative paths: to the working directory)."""
    kubeconfig: Mapping[str, Any] | None = field(default=None, repr=False)
    """Inline kubeconfig (JSON), used when the file does not exist. Kept in memory only:
    upstream wrote it to disk in plain text."""
    client_configuration: Mapping[str, Any] = field(default_factory=dict)
    """Attributes set on the kubernetes_asyncio ``Configuration`` after the kubeconfig is
    loaded (``verify_ssl``, ``ssl_ca_cert``, ``cert_file``, ``key_file``, ...)."""
    request_timeout_seconds: float
    """Client-side timeout of one remote API call. Keeps a hung API server from hanging
    the plugin (interLink gives up on a call after 120 s anyway)."""
    watch_timeout_seconds: int = 300
    """Server-side length of one watch request; the watch then resumes where it was."""
    watch_inactivity_seconds: float = 70.0
    """A watch silent this long is dead. The API server sends a bookmark about every
    60 s and keeps events for about 75 s, so 70 s catches it while a resume still works."""
    watch_stall_seconds: float = 300.0
    """A watcher that made no progress (no event, bookmark or accepted stream) for this
    long while the remote API server served reads fails ``/healthz`` (liveness): e.g.
    its ``watch`` right is missing and it restarts for ever. More than
    ``watch_inactivity_seconds``."""
    validation_version: str = ""
    """Kubernetes version whose schema validates translated objects (e.g. ``1.35``);
    empty: the remote API server's own version."""
    local_kubeconfig_path: str = ""
    """Optional kubeconfig of the LOCAL cluster (the virtual kubelet's), with the right
    to list pods (manifests/rbac/local-read-rbac.yaml): the orphan sweep then knows for
    sure whether a remote pod's local pod still exists. Empty: not read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OffloadingSettings:
    namespace_prefix: str
    """Remote namespace = ``<prefix>-<local namespace>``; empty: same name (upstream rule)."""
    namespace_prefix_exclusions: tuple[str, ...]
    """Local namespaces that keep their name remotely."""
    node_selector: Mapping[str, str]
    """Merged into every remote pod's ``nodeSelector``."""
    node_tolerations: tuple[Mapping[str, Any], ...]
    """Added to every remote pod's ``tolerations``."""
    capacity: str = "allocatable"
    """What the ping reports as the virtual node's resources: ``allocatable`` (the
    matching nodes' allocatable, summed) or ``free`` (minus the requests of their pods)."""
    orphan_after_seconds: float = 600.0
    """The orphan window: a remote pod interLink has not asked about for this long while
    its virtual node kept asking about others (and no younger than this) is orphaned."""
    orphan_policy: str = "report"
    """``report`` orphaned remote pods (``/orphans``, a metric, a log line) or also
    ``delete`` them, with all their objects, one sweep after they were first reported."""
    namespace_deny: tuple[str, ...] = DEFAULT_NAMESPACE_DENY
    """Remote namespaces no pod is written to (names, or prefixes ending in ``*``): the
    plugin API has no authentication, so whoever reaches it could otherwise place pods
    in the remote cluster's system namespaces (``sidecar.offload.namespace_guard``)."""
    namespace_allow: tuple[str, ...] = ()
    """When not empty, the only remote namespaces pods are written to (same patterns)."""
    own_namespace: str = ""
    """The sidecar's own (local) namespace, from ``$POD_NAMESPACE`` (the chart sets it
    from the downward API); denied as a remote namespace too. Empty: not known."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshSettings:
    init_container: bool
    """True: ``mesh-setup`` is a native sidecar (init container, restartPolicy Always)."""
    startup_probe: bool
    """Gate the pod's containers on ``/tmp/interlink/mesh-ready`` (native sidecar only)."""
    slurm_setup_script: bool
    """Adapt the stock Slurm-oriented mesh.sh to a pod before running it."""
    image: str
    """Image of the ``mesh-setup`` container; pinned by default (upstream: alpine:latest)."""
    packages: tuple[str, ...]
    """Alpine packages installed before mesh.sh runs (empty: none, for a ready image)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpTunnelSettings:
    enabled: bool
    gateway_host: str
    gateway_port: int
    gateway_ssh_private_key: str = field(repr=False)
    """Base64 of the private key PEM (upstream format). Never logged, never on argv."""
    user: str = "interlink-user"
    private_key_file: str = ""
    """The private key as a file (preferred over the inline key)."""
    known_hosts_file: str = ""
    """The gateway's pinned host key (known_hosts format). Required unless insecure."""
    insecure_skip_host_key_check: bool = False
    bind_address: str = "127.0.0.1"
    dial_mode: str = "auto"
    """``direct`` (pod IP), ``portforward`` (remote API server) or ``auto`` (direct, and
    port-forward when the pod IP does not answer)."""
    port_policy: str = "container"
    port_range: tuple[int, int] = (30000, 30999)
    keepalive_interval_seconds: float = 15.0
    keepalive_count: int = 3
    reconnect_max_backoff_seconds: float = 2.0
    """Gateway reconnects retry at least this often, so forwards are back within seconds."""
    ciphers: tuple[str, ...] = DEFAULT_TUNNEL_CIPHERS
    """SSH ciphers in order of preference. AES-GCM first: with AES-NI it is ~3x cheaper
    than asyncssh's ChaCha20-Poly1305 (which is assembled in Python around OpenSSL)."""
    pods: str = "all"
    """``all`` pods with TCP container ports (upstream), or ``annotated`` ones only
    (``interlink.io/tcp-tunnel: "true"``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    app: AppSettings
    log: LogSettings
    k8s: K8sSettings
    offloading: OffloadingSettings
    mesh: MeshSettings
    tcp_tunnel: TcpTunnelSettings
    source: str
    """Where the file came from (for the start-up log line)."""
    ignored_keys: tuple[str, ...] = ()
    """Upstream keys accepted for compatibility that have no effect here."""


# ---------------------------------------------------------------------------------------
# Value parsers. Each takes the raw string and returns the value or raises ValueError
# with a message that completes "section.key: <message>".

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _boolean(raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def _positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"expected a positive number of seconds, got {raw!r}")
    return value


def _seconds_at_least(minimum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = _positive_float(raw)
        if value < minimum:
            raise ValueError(f"expected at least {minimum:g} seconds, got {raw!r}")
        return value

    return parse


def _seconds_below(limit: float, why: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = _positive_float(raw)
        if value >= limit:
            raise ValueError(f"expected less than {limit:g} seconds ({why}), got {raw!r}")
        return value

    return parse


def _text(raw: str) -> str:
    return raw.strip()


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at character {exc.pos})") from None


def _json_or_none(raw: str) -> Any:
    return None if not raw.strip() else _json(raw)


def _string_list(raw: str) -> tuple[str, ...]:
    value = _json_or_none(raw)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError('expected a JSON list of strings, e.g. ["kube-system"]')
    return tuple(value)


def _string_map(raw: str) -> Mapping[str, str]:
    value = _json_or_none(raw)
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError('expected a JSON object of strings, e.g. {"nvidia/gpu-model": "T4"}')
    return MappingProxyType(value)


_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
_SNAKE_TOLERATION_KEYS = {"toleration_seconds": "tolerationSeconds"}


def _tolerations(raw: str) -> tuple[Mapping[str, Any], ...]:
    value = _json_or_none(raw)
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


def _kubeconfig(raw: str) -> Mapping[str, Any] | None:
    value = _json_or_none(raw)
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


def _client_configuration(raw: str) -> Mapping[str, Any]:
    value = _json_or_none(raw)
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise ValueError('expected a JSON object, e.g. {"verify_ssl": false}')
    unknown = sorted(set(value) - _CLIENT_CONFIGURATION_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_CLIENT_CONFIGURATION_KEYS))
        raise ValueError(f"unknown attribute(s) {', '.join(unknown)} (allowed: {allowed})")
    return MappingProxyType(value)


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def _port_range(raw: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", raw)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)) <= 65535:
        raise ValueError(f"expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535, got {raw!r}")
    return int(match.group(1)), int(match.group(2))


def _ciphers(raw: str) -> tuple[str, ...]:
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


def _words(raw: str) -> tuple[str, ...]:
    return tuple(raw.split())


def _k8s_version(raw: str) -> str:
    version = raw.strip().lstrip("v")
    if version and not re.fullmatch(r"1\.\d+(\.\d+)?", version):
        raise ValueError(f"expected a Kubernetes version such as 1.35, got {raw!r}")
    return version


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(_LOG_LEVELS)}, got {raw!r}")
    return level


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _namespace_prefix(raw: str) -> str:
    prefix = raw.strip()
    if prefix and (len(prefix) > 40 or not _DNS_LABEL.match(prefix)):
        raise ValueError(
            f"{prefix!r} is not a lower-case DNS label of at most 40 characters "
            "(it becomes part of remote namespace names)"
        )
    return prefix


def _namespace_patterns(raw: str) -> tuple[str, ...]:
    patterns = _string_list(raw)
    for pattern in patterns:
        name, wildcard = (pattern[:-1], True) if pattern.endswith("*") else (pattern, False)
        valid = (
            re.fullmatch(r"([a-z0-9][-a-z0-9]*)?", name) is not None
            if wildcard
            else _DNS_LABEL.match(name) is not None
        )
        if not valid or len(pattern) > 63:
            raise ValueError(
                f"{pattern!r} is neither a namespace name nor a prefix ending in * "
                '(e.g. "kube-system", "kube-*")'
            )
    return patterns


def _own_namespace(environ: Mapping[str, str], problems: list[str]) -> str:
    namespace = environ.get(OWN_NAMESPACE_ENV, "").strip()
    if namespace and (len(namespace) > 63 or not _DNS_LABEL.match(namespace)):
        problems.append(f"${OWN_NAMESPACE_ENV}: {namespace!r} is not a namespace name")
        return ""
    return namespace


def _octal_mode(raw: str) -> int:
    try:
        mode = int(raw.strip(), 8)
    except ValueError:
        raise ValueError(f"expected an octal file mode such as 0660, got {raw!r}") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"expected an octal file mode such as 0660, got {raw!r}")
    return mode


def _socket_addresses(raw: str) -> tuple[str, ...]:
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


# ---------------------------------------------------------------------------------------
# The schema: every accepted key, its parser and its default (a raw string, parsed like
# a configured value so defaults go through the same checks).


@dataclass(frozen=True, slots=True)
class _Key:
    parse: Callable[[str], Any]
    default: str | None
    """None: required."""
    ignored: bool = False
    """Upstream key accepted for compatibility, with no effect here."""


_SCHEMA: dict[str, dict[str, _Key]] = {
    "app": {
        "name": _Key(_text, "interlink-k8s-sidecar"),
        "description": _Key(_text, "", ignored=True),
        "version": _Key(_text, "dev"),
        "api_versions": _Key(_text, "v1", ignored=True),
        "api_docs_path": _Key(_text, "", ignored=True),
        "socket_address": _Key(_socket_addresses, None),
        "socket_port": _Key(_integer(0, 65535), "0"),
        "socket_mode": _Key(_octal_mode, "0660"),
        "ops_address": _Key(_text, "127.0.0.1"),
        "ops_port": _Key(_integer(0, 65535), "8090"),
        "shutdown_timeout_seconds": _Key(_positive_float, "25"),
        "state_dir": _Key(_text, "/var/lib/interlink-k8s-sidecar"),
        "janitor_max_backoff_seconds": _Key(_positive_float, "60"),
        "delete_tombstone_seconds": _Key(_positive_float, "3600"),
        "janitor_max_attempts": _Key(_integer(1, 1_000_000), "100"),
        "delete_give_up_seconds": _Key(_positive_float, "86400"),
        "request_header_timeout_seconds": _Key(_positive_float, "15"),
        "request_body_timeout_seconds": _Key(_positive_float, "60"),
        "max_concurrent_requests": _Key(_integer(1, 100_000), "512"),
        "create_deadline_seconds": _Key(
            # interLink's client waits 120 s for an answer's headers (ResponseHeaderTimeout
            # in cmd/interlink/main.go): past it, it gives up and never deletes the pod.
            _seconds_below(120, "interLink gives up on a call after 120 s"),
            "100",
        ),
    },
    "log": {
        "level": _Key(_log_level, "INFO"),
        "dir": _Key(_text, "", ignored=True),
        "rich_enabled": _Key(_boolean, "false", ignored=True),
        "requests_enabled": _Key(_boolean, "false"),
    },
    "k8s": {
        "kubeconfig_path": _Key(_text, "private/k8s/kubeconfig.yaml"),
        "kubeconfig": _Key(_kubeconfig, ""),
        "client_configuration": _Key(_client_configuration, ""),
        "request_timeout_seconds": _Key(_positive_float, "30"),
        "validation_version": _Key(_k8s_version, ""),
        "watch_timeout_seconds": _Key(_integer(1, 3600), "300"),
        "watch_inactivity_seconds": _Key(_positive_float, "70"),
        "watch_stall_seconds": _Key(_positive_float, "300"),
        "local_kubeconfig_path": _Key(_text, ""),
    },
    "offloading": {
        "namespace_prefix": _Key(_namespace_prefix, ""),
        "namespace_prefix_exclusions": _Key(_string_list, ""),
        "node_selector": _Key(_string_map, ""),
        "node_tolerations": _Key(_tolerations, ""),
        "capacity": _Key(_choice("allocatable", "free"), "allocatable"),
        # The virtual kubelet asks every 5 s: a shorter window could not tell its pace
        # from silence.
        "orphan_after_seconds": _Key(_seconds_at_least(10), "600"),
        "orphan_policy": _Key(_choice("report", "delete"), "report"),
        "namespace_deny": _Key(_namespace_patterns, json.dumps(list(DEFAULT_NAMESPACE_DENY))),
        "namespace_allow": _Key(_namespace_patterns, ""),
    },
    "mesh": {
        "init_container": _Key(_boolean, "true"),
        "startup_probe": _Key(_boolean, "true"),
        "slurm_setup_script": _Key(_boolean, "false"),
        "image": _Key(_text, "docker.io/library/alpine:3.20.3"),
        "packages": _Key(
            _words, "curl bash procps gcompat libc6-compat iproute2 util-linux shadow"
        ),
    },
    "tcp_tunnel": {
        "enabled": _Key(_boolean, "false"),
        "bastion_namespace": _Key(_text, "", ignored=True),
        "bastion_chart_path": _Key(_text, "", ignored=True),
        "gateway_host": _Key(_text, ""),
        "gateway_port": _Key(_integer(0, 65535), "0"),
        "gateway_ssh_private_key": _Key(_text, ""),
        "user": _Key(_text, "interlink-user"),
        "private_key_file": _Key(_text, ""),
        "known_hosts_file": _Key(_text, ""),
        "insecure_skip_host_key_check": _Key(_boolean, "false"),
        "bind_address": _Key(_text, "127.0.0.1"),
        "dial_mode": _Key(_choice("auto", "direct", "portforward"), "auto"),
        "port_policy": _Key(_choice("container", "range"), "container"),
        "port_range": _Key(_port_range, "30000-30999"),
        "keepalive_interval_seconds": _Key(_positive_float, "15"),
        "keepalive_count": _Key(_integer(1, 100), "3"),
        "reconnect_max_backoff_seconds": _Key(_positive_float, "2"),
        "ciphers": _Key(_ciphers, ",".join(DEFAULT_TUNNEL_CIPHERS)),
        "pods": _Key(_choice("all", "annotated"), "all"),
    },
}


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides ``section.key`` (upstream naming)."""
    return f"{section}_{key}".upper()


def _read_file(path: Path | None, problems: list[str]) -> dict[str, dict[str, str]]:
    if path is None:
        return {}
    parser = configparser.ConfigParser(interpolation=None, default_section="__no_defaults__")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        problems.append(f"config file {path}: not found")
        return {}
    except (OSError, configparser.Error) as exc:
        problems.append(f"config file {path}: {exc}")
        return {}
    values: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        if section not in _SCHEMA:
            known = ", ".join(_SCHEMA)
            problems.append(f"[{section}]: unknown section (known: {known})")
            continue
        for key, raw in parser.items(section):
            if key not in _SCHEMA[section]:
                problems.append(f"{section}.{key}: unknown key in {path}")
                continue
            values.setdefault(section, {})[key] = raw
    return values


def load(
    path: str | Path | None,
    environ: Mapping[str, str],
    *,
    defaults: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from the file at ``path`` (may be None) and ``environ``.

    ``defaults`` (keyed by environment variable name) replaces built-in defaults; it is
    how ``--local-cluster`` supplies a listen address and kubeconfig without overriding
    what the user configured. Raises SettingsError listing every problem found.
    """
    defaults = defaults or {}
    problems: list[str] = []
    file_path = Path(path) if path else None
    from_file = _read_file(file_path, problems)

    parsed: dict[str, dict[str, Any]] = {}
    ignored: list[str] = []
    for section, keys in _SCHEMA.items():
        parsed[section] = {}
        for key, spec in keys.items():
            name = env_name(section, key)
            if name in environ:
                raw, origin = environ[name], f"(from ${name})"
            elif key in from_file.get(section, {}):
                raw, origin = from_file[section][key], ""
            elif name in defaults:
                raw, origin = defaults[name], "(default)"
            elif spec.default is not None:
                raw, origin = spec.default, "(default)"
            else:
                problems.append(f"{section}.{key}: required (set it in the file or ${name})")
                continue
            if spec.ignored and origin != "(default)":
                ignored.append(f"{section}.{key}")
            try:
                parsed[section][key] = spec.parse(raw)
            except ValueError as exc:
                where = f" {origin}" if origin else ""
                problems.append(f"{section}.{key}{where}: {exc}")

    listen = _listen_addresses(parsed["app"], problems)
    _check_watch_stall(parsed["k8s"], problems)
    own_namespace = _own_namespace(environ, problems)
    tunnel = parsed["tcp_tunnel"]
    if tunnel.get("enabled"):
        if not tunnel.get("gateway_host"):
            problems.append("tcp_tunnel.gateway_host: required when tcp_tunnel.enabled is true")
        if not tunnel.get("gateway_port"):
            problems.append("tcp_tunnel.gateway_port: required when tcp_tunnel.enabled is true")
        if not (tunnel.get("private_key_file") or tunnel.get("gateway_ssh_private_key")):
            problems.append(
                "tcp_tunnel.private_key_file: required (or tcp_tunnel.gateway_ssh_private_key)"
            )
        if not tunnel.get("known_hosts_file") and not tunnel.get("insecure_skip_host_key_check"):
            problems.append(
                "tcp_tunnel.known_hosts_file: required to verify the gateway's host key "
                "(or set tcp_tunnel.insecure_skip_host_key_check = true)"
            )
    if problems:
        raise SettingsError(problems)

    app = parsed["app"]
    return Settings(
        app=AppSettings(
            listen=listen,  # from socket_address and socket_port
            **{key: value for key, value in app.items() if key in _APP_FIELDS},
        ),
        log=LogSettings(
            level=parsed["log"]["level"], requests_enabled=parsed["log"]["requests_enabled"]
        ),
        k8s=K8sSettings(**parsed["k8s"]),
        offloading=OffloadingSettings(**parsed["offloading"], own_namespace=own_namespace),
        mesh=MeshSettings(**parsed["mesh"]),
        tcp_tunnel=TcpTunnelSettings(
            **{k: v for k, v in tunnel.items() if not _SCHEMA["tcp_tunnel"][k].ignored}
        ),
        source=str(file_path) if file_path else "(no file: environment and defaults)",
        ignored_keys=tuple(ignored),
    )


def _check_watch_stall(k8s: dict[str, Any], problems: list[str]) -> None:
    """A healthy idle watch shows progress only every bookmark or inactivity timeout."""
    stall, inactivity = k8s.get("watch_stall_seconds"), k8s.get("watch_inactivity_seconds")
    if stall is not None and inactivity is not None and stall <= inactivity:
        problems.append(
            f"k8s.watch_stall_seconds: must be more than k8s.watch_inactivity_seconds "
            f"({inactivity:g}), got {stall:g}"
        )


def _listen_addresses(app: dict[str, Any], problems: list[str]) -> tuple[ListenAddress, ...]:
    if "socket_address" not in app or "socket_port" not in app:
        return ()
    result = []
    for entry in app["socket_address"]:
        if entry.startswith("unix://"):
            result.append(ListenAddress(kind=ListenKind.UNIX, path=entry[len("unix://") :]))
            continue
        host = entry[len("http://") :].rstrip("/").strip("[]")
        if app["socket_port"] == 0:
            problems.append(f"app.socket_port: must be > 0 to listen on {entry}")
            continue
        result.append(ListenAddress(kind=ListenKind.TCP, host=host, port=app["socket_port"]))
    if sum(1 for a in result if a.kind is ListenKind.TCP) > 1:
        problems.append("app.socket_address: at most one http:// address (one app.socket_port)")
    return tuple(result)
