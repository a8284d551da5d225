"""Every setting, declared once: a field of its section's dataclass (``declare.setting``).

The field's parser gives its type, its default is the raw ``config.ini`` text (parsed
into the dataclass default), its doc is its meaning, and ``SECTION_KEY`` is its
environment variable. Fields without ``setting`` are not keys: the loader derives them
(``AppSettings.listen``, ``OffloadingSettings.own_namespace``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.settings import parse as p
from sidecar.settings.choices import (
    Capacity,
    DialMode,
    LogLevel,
    OrphanPolicy,
    PortPolicy,
    TunnelPods,
)
from sidecar.settings.declare import section, setting, upstream

__all__ = [
    "DEFAULT_NAMESPACE_DENY",
    "DEFAULT_TUNNEL_CIPHERS",
    "AppSettings",
    "K8sSettings",
    "ListenAddress",
    "ListenKind",
    "LogSettings",
    "MeshSettings",
    "OffloadingSettings",
    "Settings",
    "TcpTunnelSettings",
]

# Remote namespaces refused by default: the remote cluster's own system namespaces.
DEFAULT_NAMESPACE_DENY = ("kube-system", "kube-public", "kube-node-lease")

DEFAULT_TUNNEL_CIPHERS = (
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
)

# interLink's client waits 120 s for an answer's headers (ResponseHeaderTimeout in
# cmd/interlink/main.go): past it, it gives up and never deletes the pod.
_INTERLINK_TIMEOUT = p.seconds_below(120, "interLink gives up on a call after 120 s")


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


@section(
    "app",
    description=upstream(p.text, ""),
    version=upstream(p.text, ""),
    api_versions=upstream(p.text, "v1"),
    api_docs_path=upstream(p.text, ""),
)
@dataclass(frozen=True, slots=True, kw_only=True)
class AppSettings:
    listen: tuple[ListenAddress, ...]
    """Plugin API listeners, from ``socket_address`` and ``socket_port`` (the loader)."""
    name: str = setting(p.text, "interlink-k8s-sidecar", "Application name, used in logs.")
    socket_address: tuple[str, ...] = setting(
        p.socket_addresses,
        None,
        "Plugin API listeners: ``unix:///path`` and/or ``http://host``, comma-separated.",
    )
    socket_port: int = setting(
        p.integer(0, 65535), "0", "Port of the ``http://`` listener (required with one)."
    )
    socket_mode: int = setting(
        p.octal_mode,
        "0660",
        "File mode of the unix socket. 0660: the interLink API server in the same group "
        "may connect, nobody else (the plugin API has no authentication by design).",
    )
    ops_address: str = setting(
        p.text, "127.0.0.1", "Host of the ops server (``/healthz``, ``/readyz``, ``/metrics``)."
    )
    ops_port: int = setting(
        p.integer(0, 65535), "8090", "Port of the ops server; 0 picks a free port (logged)."
    )
    shutdown_timeout_seconds: float = setting(
        p.positive_float,
        "25",
        "Budget for the whole SIGTERM ladder. Below Kubernetes' default 30 s grace period.",
    )
    state_dir: str = setting(
        p.text,
        "/var/lib/interlink-k8s-sidecar",
        "Directory for the small journal of deletes still to finish (survives restarts).",
    )
    janitor_max_backoff_seconds: float = setting(
        p.positive_float,
        "60",
        "Longest wait between two attempts to finish a delete the remote cluster refused.",
    )
    delete_tombstone_seconds: float = setting(
        p.positive_float,
        "3600",
        "How long a deleted pod uid is remembered (in memory and in the journal) so that a "
        "``/create`` of it arriving late (interLink sends create and delete from goroutines, "
        "so a delete can overtake its create) is refused instead of offloading a pod nobody "
        "will ever delete.",
    )
    janitor_max_attempts: int = setting(
        p.integer(1, 1_000_000),
        "100",
        "Attempts the remote API server answered without the delete finishing (a finalizer "
        "that never goes, a permission missing) after which the janitor gives up: the entry "
        "stays in the journal marked dead (dead-letter), counted and shown in ``/healthz``, "
        "and is tried again only hourly. Attempts while the remote server is unreachable do "
        "not count: the journal exists to wait out outages.",
    )
    delete_give_up_seconds: float = setting(
        p.positive_float,
        "86400",
        "Age of a journalled delete after which the janitor gives up on it (dead-letter), "
        "however its attempts went (once this process tried it 10 times: a remote cluster "
        "gone for good is unreachable, which the attempt cap does not count).",
    )
    request_header_timeout_seconds: float = setting(
        p.positive_float,
        "15",
        "A plugin API connection that has not sent a whole request line and headers this "
        "long after it opened (or after its previous answer) is closed: half-sent requests "
        "cannot hold connections.",
    )
    request_body_timeout_seconds: float = setting(
        p.positive_float,
        "60",
        "Time a client has to send a request body once its headers arrived; then 408.",
    )
    max_concurrent_requests: int = setting(
        p.integer(1, 100_000),
        "512",
        "Plugin API requests handled at once; beyond, 503 with Retry-After at once.",
    )
    create_deadline_seconds: float = setting(
        _INTERLINK_TIMEOUT,
        "100",
        "Longest a ``/create`` may take before it is abandoned (504) and what it wrote is "
        "removed. Below interLink's 120 s client timeout, so it hears our answer, not its "
        "own timeout, and nothing is left that it does not know about.",
    )


@section("log", dir=upstream(p.text, ""), rich_enabled=upstream(p.boolean, "false"))
@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    level: LogLevel = setting(p.choice(LogLevel), "INFO", "Root log level name.")
    requests_enabled: bool = setting(
        p.boolean,
        "false",
        "Log one line per plugin API request (method, path, status, duration). Bodies are "
        "never logged: they carry Secret data and service-account tokens.",
    )


@section("k8s")
@dataclass(frozen=True, slots=True, kw_only=True)
class K8sSettings:
    kubeconfig_path: str = setting(
        p.text,
        "private/k8s/kubeconfig.yaml",
        "Remote cluster kubeconfig file (relative paths: to the working directory).",
    )
    kubeconfig: Mapping[str, Any] | None = setting(
        p.kubeconfig,
        "",
        "Inline kubeconfig (JSON), used when the file does not exist. Kept in memory only: "
        "upstream wrote it to disk in plain text.",
        repr=False,
    )
    client_configuration: Mapping[str, Any] = setting(
        p.client_configuration,
        "",
        "Attributes set on the kubernetes_asyncio ``Configuration`` after the kubeconfig is "
        "loaded (``verify_ssl``, ``ssl_ca_cert``, ``cert_file``, ``key_file``, ...).",
    )
    request_timeout_seconds: float = setting(
        p.positive_float,
        "30",
        "Client-side timeout of one remote API call. Keeps a hung API server from hanging "
        "the plugin (interLink gives up on a call after 120 s anyway).",
    )
    validation_version: str = setting(
        p.k8s_version,
        "",
        "Kubernetes version whose schema validates translated objects (e.g. ``1.35``); "
        "empty: the remote API server's own version.",
    )
    watch_timeout_seconds: int = setting(
        p.integer(1, 3600),
        "300",
        "Server-side length of one watch request; the watch then resumes where it was.",
    )
    watch_inactivity_seconds: float = setting(
        p.positive_float,
        "70",
        "A watch silent this long is dead. The API server sends a bookmark about every 60 s "
        "and keeps events for about 75 s, so 70 s catches it while a resume still works.",
    )
    watch_stall_seconds: float = setting(
        p.positive_float,
        "300",
        "A watcher that made no progress (no event, bookmark or accepted stream) for this "
        "long while the remote API server served reads fails ``/healthz`` (liveness): e.g. "
        "its ``watch`` right is missing and it restarts for ever. More than "
        "``watch_inactivity_seconds``.",
    )
    watch_max_backoff_seconds: float = setting(
        p.positive_float,
        "30",
        "Longest wait between two attempts of a failing watch (doubling from 1 s). A "
        "recovered remote API server ends the wait at once (the health prober sees it), "
        "so this bounds only failures the prober does not see, e.g. a missing ``watch`` "
        "right; lower it for faster retries, raise it to spare a struggling server.",
    )
    local_kubeconfig_path: str = setting(
        p.text,
        "",
        "Optional kubeconfig of the LOCAL cluster (the virtual kubelet's), with the right to "
        "list pods (manifests/rbac/local-read-rbac.yaml): the orphan sweep then knows for "
        "sure whether a remote pod's local pod still exists. Empty: not read.",
    )


@section("offloading")
@dataclass(frozen=True, slots=True, kw_only=True)
class OffloadingSettings:
    namespace_prefix: str = setting(
        p.namespace_prefix,
        "",
        "Remote namespace = ``<prefix>-<local namespace>``; empty: same name (upstream rule).",
    )
    namespace_prefix_exclusions: tuple[str, ...] = setting(
        p.string_list, "", "Local namespaces that keep their name remotely."
    )
    node_selector: Mapping[str, str] = setting(
        p.string_map, "", "Merged into every remote pod's ``nodeSelector``."
    )
    node_tolerations: tuple[Mapping[str, Any], ...] = setting(
        p.tolerations, "", "Added to every remote pod's ``tolerations``."
    )
    capacity: Capacity = setting(
        p.choice(Capacity),
        "allocatable",
        "What the ping reports as the virtual node's resources: ``allocatable`` (the "
        "matching nodes' allocatable, summed) or ``free`` (minus the requests of their pods).",
    )
    orphan_after_seconds: float = setting(
        # The virtual kubelet asks every 5 s: a shorter window could not tell its pace
        # from silence.
        p.seconds_at_least(10),
        "600",
        "The orphan window: a remote pod interLink has not asked about for this long while "
        "its virtual node kept asking about others (and no younger than this) is orphaned.",
    )
    orphan_policy: OrphanPolicy = setting(
        p.choice(OrphanPolicy),
        "report",
        "``report`` orphaned remote pods (``/orphans``, a metric, a log line) or also "
        "``delete`` them, with all their objects, one sweep after they were first reported.",
    )
    orphan_objects_grace_seconds: float = setting(
        # A create writes its copies seconds before its pod, and the sweep waits for a
        # create in flight anyway (the pod uid's lock): a minute is already generous.
        p.seconds_at_least(60),
        "600",
        "Age below which a ConfigMap or Secret of ours whose pod is gone is left alone by "
        "the orphan-object sweep (a create writes them before its pod). Lower: quota held "
        "by leftovers comes back sooner.",
    )
    namespace_deny: tuple[str, ...] = setting(
        p.namespace_patterns,
        json.dumps(list(DEFAULT_NAMESPACE_DENY)),
        "Remote namespaces no pod is written to (names, or prefixes ending in ``*``): the "
        "plugin API has no authentication, so whoever reaches it could otherwise place pods "
        "in the remote cluster's system namespaces (``sidecar.offload.namespace_guard``).",
    )
    namespace_allow: tuple[str, ...] = setting(
        p.namespace_patterns,
        "",
        "When not empty, the only remote namespaces pods are written to (same patterns).",
    )
    own_namespace: str = ""
    """The sidecar's own (local) namespace, from ``$POD_NAMESPACE`` (the chart sets it
    from the downward API); denied as a remote namespace too. Empty: not known."""


@section("mesh")
@dataclass(frozen=True, slots=True, kw_only=True)
class MeshSettings:
    init_container: bool = setting(
        p.boolean,
        "true",
        "True: ``mesh-setup`` is a native sidecar (init container, restartPolicy Always).",
    )
    startup_probe: bool = setting(
        p.boolean,
        "true",
        "Gate the pod's containers on ``/tmp/interlink/mesh-ready`` (native sidecar only).",
    )
    slurm_setup_script: bool = setting(
        p.boolean, "false", "Adapt the stock Slurm-oriented mesh.sh to a pod before running it."
    )
    image: str = setting(
        p.text,
        "docker.io/library/alpine:3.20.3",
        "Image of the ``mesh-setup`` container; pinned by default (upstream: alpine:latest).",
    )
    packages: tuple[str, ...] = setting(
        p.words,
        "curl bash procps gcompat libc6-compat iproute2 util-linux shadow",
        "Alpine packages installed before mesh.sh runs (empty: none, for a ready image).",
    )


@section(
    "tcp_tunnel",
    bastion_namespace=upstream(p.text, ""),
    bastion_chart_path=upstream(p.text, ""),
)
@dataclass(frozen=True, slots=True, kw_only=True)
class TcpTunnelSettings:
    enabled: bool = setting(p.boolean, "false", "Run the TCP tunnel manager.")
    gateway_host: str = setting(p.text, "", "Host of the SSH gateway (required when enabled).")
    gateway_port: int = setting(
        p.integer(0, 65535), "0", "Port of the SSH gateway (required when enabled)."
    )
    gateway_ssh_private_key: str = setting(
        p.text,
        "",
        "Base64 of the private key PEM (upstream format). Never logged, never on argv.",
        repr=False,
    )
    user: str = setting(p.text, "interlink-user", "SSH user on the gateway.")
    private_key_file: str = setting(
        p.text, "", "The private key as a file (preferred over the inline key)."
    )
    known_hosts_file: str = setting(
        p.text,
        "",
        "The gateway's pinned host key (known_hosts format). Required unless insecure.",
    )
    insecure_skip_host_key_check: bool = setting(
        p.boolean, "false", "Do not check the gateway's host key (labs only)."
    )
    bind_address: str = setting(
        p.text, "127.0.0.1", "Address the gateway listens on for each forward."
    )
    dial_mode: DialMode = setting(
        p.choice(DialMode),
        "auto",
        "``direct`` (pod IP), ``portforward`` (remote API server) or ``auto`` (direct, and "
        "port-forward when the pod IP does not answer).",
    )
    port_policy: PortPolicy = setting(
        p.choice(PortPolicy),
        "container",
        "Gateway port of a forward: the ``container`` port (upstream) or the lowest free "
        "one of ``port_range`` (``range``).",
    )
    port_range: tuple[int, int] = setting(
        p.port_range, "30000-30999", "Gateway ports for ``port_policy = range``."
    )
    connect_timeout_seconds: float = setting(
        p.positive_float,
        "10",
        "Longest a connection to the gateway may take (TCP connect, SSH handshake and "
        "login) before it counts as failed and is retried. Raise it for a gateway far away "
        "or behind a slow link.",
    )
    keepalive_interval_seconds: float = setting(
        p.positive_float, "15", "SSH keepalive period: a dead gateway behind NAT is seen."
    )
    keepalive_count: int = setting(
        p.integer(1, 100), "3", "Unanswered keepalives after which the gateway is dead."
    )
    reconnect_max_backoff_seconds: float = setting(
        p.positive_float,
        "2",
        "Gateway reconnects retry at least this often, so forwards are back within seconds.",
    )
    ciphers: tuple[str, ...] = setting(
        p.ciphers,
        ",".join(DEFAULT_TUNNEL_CIPHERS),
        "SSH ciphers in order of preference. AES-GCM first: with AES-NI it is ~3x cheaper "
        "than asyncssh's ChaCha20-Poly1305 (which is assembled in Python around OpenSSL).",
    )
    pods: TunnelPods = setting(
        p.choice(TunnelPods),
        "all",
        "``all`` pods with TCP container ports (upstream), or ``annotated`` ones only "
        '(``interlink.io/tcp-tunnel: "true"``).',
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    app: AppSettings
    log: LogSettings = field(default_factory=LogSettings)
    k8s: K8sSettings = field(default_factory=K8sSettings)
    offloading: OffloadingSettings = field(default_factory=OffloadingSettings)
    mesh: MeshSettings = field(default_factory=MeshSettings)
    tcp_tunnel: TcpTunnelSettings = field(default_factory=TcpTunnelSettings)
    source: str = "(no file: environment and defaults)"
    """Where the file came from (for the start-up log line)."""
    ignored_keys: tuple[str, ...] = ()
    """Upstream keys accepted for compatibility that have no effect here."""
