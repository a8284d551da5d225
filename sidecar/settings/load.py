"""Reading ``config.ini`` and the environment into ``Settings``, every problem at once.

Each declared key (``sidecar.settings.keys``) takes, in order: ``$SECTION_KEY``, the
file's value, the caller's ``defaults`` (by environment variable name), the declared
default; a key with none is required. Every value goes through its key's parser, and
every problem names its key.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sidecar.settings import keys as k
from sidecar.settings.declare import Key, registry
from sidecar.settings.parse import DNS_LABEL

__all__ = ["KEYS", "OWN_NAMESPACE_ENV", "SettingsError", "load"]

# The downward-API variable that tells the sidecar its own namespace (not a config key:
# it describes where the process runs, not how it should behave).
OWN_NAMESPACE_ENV = "POD_NAMESPACE"

_SECTIONS = registry()
KEYS: tuple[Key, ...] = tuple(key for _, keys in _SECTIONS.values() for key in keys)
"""Every accepted key, in section and declaration order."""


class SettingsError(Exception):
    """Every problem found in the configuration, each line naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


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
        if section not in _SECTIONS:
            known = ", ".join(_SECTIONS)
            problems.append(f"[{section}]: unknown section (known: {known})")
            continue
        names = {key.name for key in _SECTIONS[section][1]}
        for key, raw in parser.items(section):
            if key not in names:
                problems.append(f"{section}.{key}: unknown key in {path}")
                continue
            values.setdefault(section, {})[key] = raw
    return values


def load(
    path: str | Path | None,
    environ: Mapping[str, str],
    *,
    defaults: Mapping[str, str] | None = None,
) -> k.Settings:
    """Build the settings from the file at ``path`` (may be None) and ``environ``.

    ``defaults`` (keyed by environment variable name) replaces built-in defaults; it is
    how ``--local-cluster`` supplies a listen address and kubeconfig without overriding
    what the user configured. Raises SettingsError listing every problem found.
    """
    defaults = defaults or {}
    problems: list[str] = []
    file_path = Path(path) if path else None
    from_file = _read_file(file_path, problems)

    parsed: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}
    ignored: list[str] = []
    for key in KEYS:
        in_file = from_file.get(key.section, {})
        if key.env in environ:
            raw, origin = environ[key.env], f"(from ${key.env})"
        elif key.name in in_file:
            raw, origin = in_file[key.name], ""
        elif key.env in defaults:
            raw, origin = defaults[key.env], "(default)"
        elif key.default is not None:
            raw, origin = key.default, "(default)"
        else:
            problems.append(f"{key.path}: required (set it in the file or ${key.env})")
            continue
        try:
            value = key.parse(raw)
        except ValueError as exc:
            where = f" {origin}" if origin else ""
            problems.append(f"{key.path}{where}: {exc}")
            continue
        if key.ignored:
            if origin != "(default)":
                ignored.append(key.path)
        else:
            parsed[key.section][key.name] = value

    app, k8s, tunnel = parsed["app"], parsed["k8s"], parsed["tcp_tunnel"]
    listen = _listen_addresses(app, problems)
    _check_watch_stall(k8s, problems)
    own_namespace = _own_namespace(environ, problems)
    if tunnel.get("enabled"):
        _check_tunnel(tunnel, problems)
    if problems:
        raise SettingsError(problems)

    return k.Settings(
        app=k.AppSettings(listen=listen, **app),
        log=k.LogSettings(**parsed["log"]),
        k8s=k.K8sSettings(**k8s),
        offloading=k.OffloadingSettings(**parsed["offloading"], own_namespace=own_namespace),
        mesh=k.MeshSettings(**parsed["mesh"]),
        tcp_tunnel=k.TcpTunnelSettings(**tunnel),
        source=str(file_path) if file_path else "(no file: environment and defaults)",
        ignored_keys=tuple(ignored),
    )


def _check_tunnel(tunnel: dict[str, Any], problems: list[str]) -> None:
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


def _check_watch_stall(k8s: dict[str, Any], problems: list[str]) -> None:
    """A healthy idle watch shows progress only every bookmark or inactivity timeout."""
    stall, inactivity = k8s.get("watch_stall_seconds"), k8s.get("watch_inactivity_seconds")
    if stall is not None and inactivity is not None and stall <= inactivity:
        problems.append(
            f"k8s.watch_stall_seconds: must be more than k8s.watch_inactivity_seconds "
            f"({inactivity:g}), got {stall:g}"
        )


def _own_namespace(environ: Mapping[str, str], problems: list[str]) -> str:
    namespace = environ.get(OWN_NAMESPACE_ENV, "").strip()
    if namespace and (len(namespace) > 63 or not DNS_LABEL.match(namespace)):
        problems.append(f"${OWN_NAMESPACE_ENV}: {namespace!r} is not a namespace name")
        return ""
    return namespace


def _listen_addresses(app: dict[str, Any], problems: list[str]) -> tuple[k.ListenAddress, ...]:
    if "socket_address" not in app or "socket_port" not in app:
        return ()
    result = []
    for entry in app["socket_address"]:
        if entry.startswith("unix://"):
            result.append(k.ListenAddress(kind=k.ListenKind.UNIX, path=entry[len("unix://") :]))
            continue
        host = entry[len("http://") :].rstrip("/").strip("[]")
        if app["socket_port"] == 0:
            problems.append(f"app.socket_port: must be > 0 to listen on {entry}")
            continue
        result.append(k.ListenAddress(kind=k.ListenKind.TCP, host=host, port=app["socket_port"]))
    if sum(1 for a in result if a.kind is k.ListenKind.TCP) > 1:
        problems.append("app.socket_address: at most one http:// address (one app.socket_port)")
    return tuple(result)
