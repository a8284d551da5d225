"""One WARNING line at start for every setting that weakens the sidecar's security.

Why this module exists: each of these settings is legitimate somewhere (a lab cluster
with a self-signed certificate, a plugin API behind a NetworkPolicy), so none is
refused; but none may be silent either, because a configuration copied from a lab ends
up in production. The lines name the key to change and never a credential (the
kubeconfig is read for its TLS settings only).

What counts:

* TLS verification of the remote API server off: ``k8s.client_configuration``
  ``verify_ssl: false``, or ``insecure-skip-tls-verify`` in the current context's cluster
  of the kubeconfig (kubernetes_asyncio applies ``verify_ssl = not <that value>``, then
  ``client_configuration`` on top); the same for ``k8s.local_kubeconfig_path``;
* a remote API server reached over plain ``http://`` (the bearer token in clear);
* ``tcp_tunnel.insecure_skip_host_key_check`` with tunnels on;
* the plugin API on a TCP address that is not loopback (it has no authentication: the
  network is its only guard), or on a unix socket others may connect to;
* the ops server on an address that is not loopback (``/orphans`` and ``/tunnels`` name
  pods and their uids);
* a namespace deny list without the remote cluster's system namespaces.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sidecar.core.shape import WireError
from sidecar.offload.namespace_guard import check_remote_namespace
from sidecar.settings import DEFAULT_NAMESPACE_DENY, ListenKind, OffloadingSettings, Settings

logger = logging.getLogger(__name__)

# Connecting to a unix socket needs write permission on it.
_OTHERS_WRITE = 0o002


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listen address) is reachable from this host only. Empty,
    ``0.0.0.0``, ``::`` and names other than ``localhost`` are not."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _current_cluster(kubeconfig: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """(name, cluster) of the kubeconfig's current context, as the loader picks it."""
    try:
        current = kubeconfig.get("current-context")
        (context,) = [c["context"] for c in kubeconfig["contexts"] if c["name"] == current]
        name = context["cluster"]
        (cluster,) = [c["cluster"] for c in kubeconfig["clusters"] if c["name"] == name]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # not loadable: the client reports that itself, with its key
    return (str(name), cluster) if isinstance(cluster, Mapping) else None


def _read_kubeconfig(path: str) -> Mapping[str, Any] | None:
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, Mapping) else None


def _tls_findings(
    key: str, kubeconfig: Mapping[str, Any] | None, overrides: Mapping[str, Any]
) -> list[str]:
    found = _current_cluster(kubeconfig) if kubeconfig is not None else None
    name, cluster = found if found is not None else ("", {})
    verify = not cluster.get("insecure-skip-tls-verify", False)
    source = f'{key}: cluster "{name}" has insecure-skip-tls-verify'
    if "verify_ssl" in overrides:
        verify = bool(overrides["verify_ssl"])
        source = "k8s.client_configuration: verify_ssl is false"
    server = str(overrides.get("host") or cluster.get("server") or "")
    lines = []
    if server.lower().startswith("http://"):
        lines.append(
            f"{key}: the remote API server is reached over plain http:// (its credentials "
            "travel in clear); use https://"
        )
    elif not verify:
        lines.append(
            f"{source}: the remote API server's certificate is not verified (anyone on the "
            "path can read and change every call, Secrets included)"
        )
    return lines


def findings(settings: Settings) -> list[str]:
    """One line per insecure setting, each naming the key. Reads the kubeconfig files
    (blocking: call it from a thread, or before the event loop runs)."""
    lines: list[str] = []
    k8s = settings.k8s
    kubeconfig = (
        _read_kubeconfig(k8s.kubeconfig_path)
        if Path(k8s.kubeconfig_path).is_file()
        else k8s.kubeconfig
    )
    key = "k8s.kubeconfig_path" if Path(k8s.kubeconfig_path).is_file() else "k8s.kubeconfig"
    lines += _tls_findings(key, kubeconfig, k8s.client_configuration)
    if k8s.local_kubeconfig_path:
        local = _read_kubeconfig(k8s.local_kubeconfig_path)
        lines += _tls_findings("k8s.local_kubeconfig_path", local, {})

    if settings.tcp_tunnel.enabled and settings.tcp_tunnel.insecure_skip_host_key_check:
        lines.append(
            "tcp_tunnel.insecure_skip_host_key_check is on: the gateway's host key is not "
            "checked (a man in the middle gets every tunnelled connection); set "
            "tcp_tunnel.known_hosts_file"
        )

    for listen in settings.app.listen:
        if listen.kind is ListenKind.TCP and not is_loopback(listen.host):
            lines.append(
                f"app.socket_address: the plugin API listens on {listen.url}, not on loopback; "
                "it has no authentication: whoever reaches it can create and delete remote "
                "pods (keep it behind a NetworkPolicy, or use a unix socket)"
            )
        if listen.kind is ListenKind.UNIX and settings.app.socket_mode & _OTHERS_WRITE:
            lines.append(
                f"app.socket_mode: {settings.app.socket_mode:04o} lets every local user "
                f"connect to {listen.url} and create and delete remote pods; use 0660"
            )
    if not is_loopback(settings.app.ops_address):
        lines.append(
            f"app.ops_address: the ops server listens on {settings.app.ops_address or '*'}, "
            "not on loopback; /orphans and /tunnels name pods and their uids (keep it "
            "behind a NetworkPolicy)"
        )

    admitted = [ns for ns in DEFAULT_NAMESPACE_DENY if _admitted(ns, settings.offloading)]
    if admitted:
        lines.append(
            f"offloading.namespace_deny and namespace_allow admit {', '.join(admitted)}: "
            "pods may be written to the remote cluster's system namespaces"
        )
    return lines


def _admitted(namespace: str, offloading: OffloadingSettings) -> bool:
    try:
        check_remote_namespace(namespace, local_namespace=namespace, offloading=offloading)
    except WireError:
        return False
    return True


async def warn_at_start(settings: Settings) -> None:
    """Log ``findings`` as WARNING lines (the files are read in a thread)."""
    for line in await asyncio.to_thread(findings, settings):
        logger.warning("insecure setting: %s", line)
