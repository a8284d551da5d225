"""The status cache's LIST of every pod, in pages (``limit``/``continue``), against a
stand-in API server speaking the list protocol: every page read, the last page's
resourceVersion returned, managedFields dropped, an expired ``continue`` (410) starts
the list again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client

from sidecar.remote.cluster import RemoteCluster
from sidecar.remote.errors import RemoteError

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
SELECTOR = "interlink.io=offloading"


def pod(index: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"p{index}",
            "resourceVersion": str(10 + index),
            "managedFields": [{"manager": "kubelet"}],
        },
        "status": {"phase": "Running"},
    }


class FakeApiServer:
    """``GET /api/v1/pods`` with ``limit`` and ``continue`` (an offset here); the
    ``expire`` first continue tokens are refused as a compacted snapshot would be."""

    def __init__(self, count: int, *, expire: int = 0) -> None:
        self.pods = [pod(i) for i in range(count)]
        self.expire = expire
        self.queries: list[dict[str, str]] = []

    async def list_pods(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.queries.append(query)
        assert query["labelSelector"] == SELECTOR
        start = int(query.get("continue") or 0)
        if start and self.expire:
            self.expire -= 1
            return web.json_response(
                {
                    "kind": "Status",
                    "status": "Failure",
                    "reason": "Expired",
                    "message": "The provided continue parameter is too old",
                    "code": 410,
                },
                status=410,
            )
        limit = int(query["limit"])
        items = self.pods[start : start + limit]
        rest = start + limit < len(self.pods)
        meta = {"resourceVersion": "777", "continue": str(start + limit) if rest else ""}
        if rest:
            meta["remainingItemCount"] = len(self.pods) - start - limit
        return web.json_response({"kind": "PodList", "metadata": meta, "items": items})


async def listed(
    aiohttp_server: ServerFactory, api: FakeApiServer, page_size: int
) -> tuple[list[dict[str, Any]], str]:
    app = web.Application()
    app.router.add_get("/api/v1/pods", api.list_pods)
    server = await aiohttp_server(app)
    configuration = client.Configuration(host=str(server.make_url("")).rstrip("/"))
    remote = RemoteCluster(client.ApiClient(configuration=configuration), timeout=10)
    try:
        return await remote.list_all_pods(SELECTOR, page_size=page_size)
    finally:
        await remote.close()


@pytest.mark.parametrize(("count", "pages"), [(0, 1), (5, 3), (6, 3)])
async def test_every_page_is_read_and_the_last_version_returned(
    aiohttp_server: ServerFactory, count: int, pages: int
) -> None:
    api = FakeApiServer(count)
    items, version = await listed(aiohttp_server, api, page_size=2)
    assert [p["metadata"]["name"] for p in items] == [f"p{i}" for i in range(count)]
    assert version == "777"
    assert all("managedFields" not in p["metadata"] for p in items)
    assert len(api.queries) == pages
    assert all(q["limit"] == "2" for q in api.queries)
    assert "continue" not in api.queries[0]


async def test_an_expired_continue_starts_the_list_again(aiohttp_server: ServerFactory) -> None:
    api = FakeApiServer(5, expire=1)
    items, _ = await listed(aiohttp_server, api, page_size=2)
    assert [p["metadata"]["name"] for p in items] == [f"p{i}" for i in range(5)]
    starts = [q.get("continue", "") for q in api.queries]
    assert starts == ["", "2", "", "2", "4"]


async def test_a_continue_that_keeps_expiring_is_an_error(aiohttp_server: ServerFactory) -> None:
    api = FakeApiServer(5, expire=100)
    with pytest.raises(RemoteError) as failed:
        await listed(aiohttp_server, api, page_size=2)
    assert failed.value.status == 410
