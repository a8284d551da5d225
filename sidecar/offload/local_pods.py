"""Reading the LOCAL cluster's pods (optional): definite evidence for the orphan sweep.

With ``k8s.local_kubeconfig_path`` set, the sidecar may ask the local cluster (the one
the virtual kubelet registers in) whether the local pod of a remote pod still exists.
It needs only ``list`` on ``pods`` cluster-wide (``manifests/rbac/local-read-rbac.yaml``)
and never writes.

One LIST per sweep, not a GET per candidate: a sweep that has candidates usually has
many (every long-running pod is one, since the window is their only filter), so a
single paginated LIST (``PAGE`` pods a page) costs fewer requests than one GET each,
and it asks for metadata only (``PartialObjectMetadataList``: names and uids, no specs
or statuses), so even a large local cluster answers with a small body. A sweep with no
candidate makes no local request at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

from sidecar.offload.orphan_rules import LocalAnswer

PAGE = 500
# Metadata only (the API server has served this since 1.15); plain JSON as a fallback.
_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class LocalReadError(Exception):
    """The local cluster could not be read (unreachable, refused, bad answer)."""


@dataclass(frozen=True, slots=True)
class LocalPods:
    """One LIST of the local cluster's pods: their uids, and uid by namespace and name."""

    by_name: Mapping[tuple[str, str], str] = field(default_factory=dict)
    uids: frozenset[str] = frozenset()

    def answer(self, uid: str, namespace: str, name: str) -> LocalAnswer:
        if uid in self.uids:
            return LocalAnswer.EXISTS
        if (namespace, name) in self.by_name:
            return LocalAnswer.REPLACED
        return LocalAnswer.NOT_FOUND


def _message(status: int, body: bytes) -> str:
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    text = parsed.get("message") if isinstance(parsed, dict) else None
    return f"HTTP {status}: {text or body.decode('utf-8', 'replace')[:300]}"


def _check_file(path: str) -> None:
    if not Path(path).is_file():
        raise LocalReadError(f"k8s.local_kubeconfig_path: {path} does not exist")


class LocalPodReader:
    """Lists the local cluster's pods with the credentials of ``k8s.local_kubeconfig_path``."""

    def __init__(self, api_client: client.ApiClient, *, timeout: float) -> None:
        self._api = api_client
        self._timeout = timeout

    @classmethod
    async def from_kubeconfig(cls, path: str, *, timeout: float) -> LocalPodReader:
        """Raises LocalReadError naming the key when the kubeconfig cannot be loaded."""
        configuration = client.Configuration()
        _check_file(path)
        try:
            await config.load_kube_config(config_file=path, client_configuration=configuration)
        except Exception as exc:  # noqa: BLE001 - the loader raises many types; all mean "bad file"
            raise LocalReadError(
                f"k8s.local_kubeconfig_path: cannot load the kubeconfig {path}: {exc}"
            ) from None
        return cls(client.ApiClient(configuration=configuration), timeout=timeout)

    async def close(self) -> None:
        await self._api.close()

    async def list_pods(self) -> LocalPods:
        """Every local pod's namespace, name and uid (paginated LIST, metadata only)."""
        by_name: dict[tuple[str, str], str] = {}
        token = ""
        while True:
            page = await self._page(token)
            for item in page.get("items") or []:
                meta = item.get("metadata") if isinstance(item, dict) else None
                if not isinstance(meta, dict):
                    continue
                uid, namespace, name = meta.get("uid"), meta.get("namespace"), meta.get("name")
                if isinstance(uid, str) and isinstance(namespace, str) and isinstance(name, str):
                    by_name[(namespace, name)] = uid
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return LocalPods(by_name=by_name, uids=frozenset(by_name.values()))

    async def _page(self, token: str) -> dict[str, Any]:
        query = [("limit", str(PAGE))]
        if token:
            query.append(("continue", token))
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                "/api/v1/pods",
                "GET",
                query_params=query,
                header_params={"Accept": _ACCEPT},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self._timeout,
                _return_http_data_only=True,
            )
            async with response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise LocalReadError(f"local cluster unreachable: {exc!r}") from None
        if response.status != 200:
            raise LocalReadError(f"listing local pods failed: {_message(response.status, body)}")
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            raise LocalReadError("listing local pods: the answer is not JSON") from None
        if not isinstance(parsed, dict):
            raise LocalReadError("listing local pods: the answer is not a list object")
        return parsed
