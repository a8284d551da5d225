"""A real node (kubelet + containerd + runc) for the local cluster; see ``node.py``."""

from tests.localcluster.realnode import host, hostops, snapshot
from tests.localcluster.realnode.images import BUSYBOX_IMAGE, PAUSE_IMAGE
from tests.localcluster.realnode.node import (
    ENV,
    NODE_LABEL,
    NODE_NAME,
    TAINT_KEY,
    RealNode,
    toleration,
    unavailable_reason,
    wanted,
)

__all__ = [
    "BUSYBOX_IMAGE",
    "ENV",
    "NODE_LABEL",
    "NODE_NAME",
    "PAUSE_IMAGE",
    "TAINT_KEY",
    "RealNode",
    "host",
    "hostops",
    "snapshot",
    "toleration",
    "unavailable_reason",
    "wanted",
]
