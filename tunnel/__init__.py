"""The embedded SSH tunnel manager (reverse forwards to the gateway). Never imports ``sidecar``.

It learns which pod ports to expose from a plain value handed to it by the sidecar
(``DesiredTunnel``), so it can be tested without the plugin. The manager itself arrives
with the tunnel issue; this package holds the value type it will consume.
"""

from tunnel.desired import DesiredTunnel

__all__ = ["DesiredTunnel"]
