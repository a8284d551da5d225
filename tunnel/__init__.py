"""The embedded SSH tunnel manager (reverse forwards to the gateway). Never imports ``sidecar``.

It learns which pod ports to expose from a plain value handed to it by the embedder
(``DesiredTunnel``), and reaches pods through a dial function it is given, so it knows
nothing about the plugin (``manager.TunnelManager`` is the entry point).
"""

from tunnel.desired import DesiredTunnel

__all__ = ["DesiredTunnel"]
