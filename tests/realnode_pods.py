"""Pods for the real node, sent through a sidecar the way interLink sends them, and the
calls the real-node tests make about them (create, status, logs, delete).

Every container runs ``BUSYBOX_IMAGE`` with ``imagePullPolicy: Never`` (there is no
registry) and ``sh -c <script>``. Pods get ``terminationGracePeriodSeconds: 1``: a shell
or ``sleep`` running as PID 1 ignores SIGTERM, so a delete (or a liveness kill) waits the
whole grace period before SIGKILL; 30 s by default.

Scripts reach the remote kubelet as they are, and it expands ``$(NAME)`` when NAME is
an env variable of the container and turns ``$$`` into ``$``: scripts here use neither
(``$(command)`` substitutions are left alone, no variable has such a name).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from typing import Any

from sidecar.core import naming
from tests import podshapes
from tests.fixtures.sidecar_process import SidecarProcess
from tests.integration.plugin_client import call, log_request, poll
from tests.localcluster import LocalCluster
from tests.localcluster.realnode import BUSYBOX_IMAGE

REMOTE_NAMESPACE = "offloading-default"
"""Where the test sidecar (``namespace_prefix = offloading``) puts pods of ``default``."""
RANDOM = "$(cat /proc/sys/kernel/random/uuid)"
"""Shell text for a fresh random value (a new one each time a container runs)."""
HEX = "od -An -tx1 -v | tr -d ' \\n'"
"""Shell filter: its input as lowercase hex, on one line (``bytes.hex()``)."""


def container(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "resources": {},
        **extra,
    }


def pod(prefix: str, spec: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A local pod as the virtual kubelet sends it (restartPolicy Never unless ``spec``
    says otherwise), with a fresh uid and a name made of ``prefix`` and the uid."""
    uid = str(uuid.uuid4())
    return podshapes.pod(
        uid, f"{prefix}-{uid[:8]}", {"terminationGracePeriodSeconds": 1} | spec, **options
    )


def secret_bytes(name: str, data: dict[str, bytes]) -> dict[str, Any]:
    """A Secret as interLink sends it, from raw bytes (``data`` values base64)."""
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"secret-{name}"},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        "type": "Opaque",
    }


def parse_hex_report(text: str, tag: str) -> dict[str, str | None]:
    """``<tag> <name> <hex>`` lines of a container's output -> {name: text}; a line
    ``<tag> <name> unset`` gives None. Decoded as UTF-8 with surrogates kept, so any
    byte sequence round-trips (``.encode("utf-8", "surrogateescape")``)."""
    found: dict[str, str | None] = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == tag:
            found[parts[1]] = (
                None
                if parts[2] == "unset"
                else bytes.fromhex(parts[2]).decode("utf-8", "surrogateescape")
            )
    return found


class Offloaded:
    """One pod sent to a sidecar: its ``/create`` body and the calls made about it."""

    def __init__(self, sidecar: SidecarProcess, body: dict[str, Any]) -> None:
        self.sidecar = sidecar
        self.body = body

    @property
    def pod(self) -> dict[str, Any]:
        return dict(self.body["pod"])

    @property
    def uid(self) -> str:
        return str(self.body["pod"]["metadata"]["uid"])

    @property
    def name(self) -> str:
        return str(self.body["pod"]["metadata"]["name"])

    async def create(self) -> None:
        code, answer = await call(self.sidecar, "POST", "/create", self.body)
        assert code == 200, answer

    async def status(self) -> dict[str, Any]:
        """This pod's ``PodStatus`` as ``/status`` answers it (the shape interLink reads)."""
        code, raw = await call(self.sidecar, "GET", "/status", [self.pod])
        assert code == 200, raw
        [answer] = json.loads(raw)
        assert answer["UID"] == self.uid
        return dict(answer)

    async def wait(self, what: str, done: Any, *, timeout: float = 90) -> dict[str, Any]:
        """Poll ``/status`` until ``done(status)``; the last status on a timeout."""
        result: dict[str, Any] = await poll(
            f"{what} (pod {self.name})", self.status, done, timeout=timeout
        )
        return result

    async def logs(self, container: str, **opts: Any) -> tuple[int, bytes]:
        return await call(self.sidecar, "GET", "/getLogs", log_request(self.pod, container, **opts))

    async def log_text(self, container: str, **opts: Any) -> str:
        code, body = await self.logs(container, **opts)
        assert code == 200, body
        return body.decode()

    async def delete(self) -> None:
        code, answer = await call(self.sidecar, "POST", "/delete", self.pod)
        assert code == 200, answer

    def remote_pod(self, cluster: LocalCluster) -> dict[str, Any]:
        """The remote pod, read from the remote API server (not through the sidecar)."""
        listing = cluster.request(
            "GET",
            f"/api/v1/namespaces/{REMOTE_NAMESPACE}/pods"
            f"?labelSelector={naming.pod_selector(self.uid)}",
        )
        [remote] = listing["items"]
        return dict(remote)

    def remote_leftovers(self, cluster: LocalCluster) -> list[str]:
        """Remote pods, ConfigMaps and Secrets of this pod still stored."""
        left = []
        for plural in ("pods", "configmaps", "secrets"):
            listing = cluster.request(
                "GET",
                f"/api/v1/namespaces/{REMOTE_NAMESPACE}/{plural}"
                f"?labelSelector={naming.pod_selector(self.uid)}",
            )
            left += [f"{plural}/{item['metadata']['name']}" for item in listing["items"]]
        return left


async def create_all(pods: Iterable[Offloaded]) -> None:
    for each in pods:
        await each.create()


async def delete_all(cluster: LocalCluster, pods: Iterable[Offloaded]) -> None:
    """``/delete`` each pod, then wait until none of their remote objects is left."""
    pods = list(pods)
    for each in pods:
        await each.delete()

    async def leftovers() -> list[str]:
        return [name for each in pods for name in each.remote_leftovers(cluster)]

    await poll("the remote objects to be deleted", leftovers, lambda left: not left, timeout=60)


def container_status(status: dict[str, Any], name: str, *, init: bool = False) -> dict[str, Any]:
    """The entry for container ``name`` of a ``PodStatus``."""
    entries = status.get("initContainers" if init else "containers") or []
    [entry] = [e for e in entries if e["name"] == name]
    return dict(entry)


def state_of(status: dict[str, Any], name: str, *, init: bool = False) -> str:
    """``waiting``, ``running`` or ``terminated`` (``""``: no state yet)."""
    return next(iter(container_status(status, name, init=init)["state"]), "")
