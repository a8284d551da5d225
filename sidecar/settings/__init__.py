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
bind. Nothing below this package reads ``os.environ``.

Layout: ``keys`` declares every setting once (a field of its section's dataclass:
parser, raw default, doc; ``declare`` is how), ``parse`` holds the value parsers,
``choices`` the enums of the fixed choice sets, ``load`` reads the file and the
environment. This module re-exports the public names.
"""

from sidecar.settings.choices import (
    Capacity,
    DialMode,
    LogLevel,
    OrphanPolicy,
    PortPolicy,
    TunnelPods,
)
from sidecar.settings.declare import Key, env_name
from sidecar.settings.keys import (
    DEFAULT_NAMESPACE_DENY,
    DEFAULT_TUNNEL_CIPHERS,
    AppSettings,
    K8sSettings,
    ListenAddress,
    ListenKind,
    LogSettings,
    MeshSettings,
    OffloadingSettings,
    Settings,
    TcpTunnelSettings,
)
from sidecar.settings.load import KEYS, OWN_NAMESPACE_ENV, SettingsError, load

__all__ = [
    "DEFAULT_NAMESPACE_DENY",
    "DEFAULT_TUNNEL_CIPHERS",
    "KEYS",
    "OWN_NAMESPACE_ENV",
    "AppSettings",
    "Capacity",
    "DialMode",
    "K8sSettings",
    "Key",
    "ListenAddress",
    "ListenKind",
    "LogLevel",
    "LogSettings",
    "MeshSettings",
    "OffloadingSettings",
    "OrphanPolicy",
    "PortPolicy",
    "Settings",
    "SettingsError",
    "TcpTunnelSettings",
    "TunnelPods",
    "env_name",
    "load",
]
