"""The context a request's handler gets: reused while the endpoint and its apps stay as they are,
built again as soon as either changes; and every request gets an id of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from gateway.exceptions import PermissionDenied
from gateway.host.registry import PluginRegistry
from gateway.plugin import Context, Permission, Plugin, Request, Response, unverified
from gateway.records.apps import AppIn, AppUpdate
from tests.support.gateway import Running, make_settings, running_app

pytestmark = pytest.mark.anyio


class Greeting(BaseModel):
    greeting: str = "hello"


seen: list[tuple[Context[Greeting], Request]] = []
probe = Plugin("probe", settings=Greeting, verifier=unverified, permissions={Permission.APPS})


@probe.route("/", methods=["POST"])
async def look(request: Request, ctx: Context[Greeting]) -> Response:
    seen.append((ctx, request))
    return Response.json(
        {
            "greeting": ctx.settings.greeting,
            "apps": {name: ctx.apps.get(name).base_url for name in ctx.apps.names},
            "url": ctx.endpoint.url,
            "request_id": request.request_id,
        }
    )


keeper = Plugin(
    "keeper",
    settings=Greeting,
    verifier=unverified,
    permissions={Permission.STORAGE, Permission.JOBS, Permission.HTTP},
)


@keeper.route("/", methods=["POST"])
async def keep(request: Request, ctx: Context[Greeting]) -> Response:
    seen.append((ctx, request))
    return Response.json({})


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    seen.clear()
    async with running_app(make_settings(tmp_path), registry=PluginRegistry([probe, keeper]), run_workers=False) as r:
        for name in ("a", "b"):
            await r.gateway.apps.add(
                AppIn(name=name, base_url=f"http://{name}.test/v1", api_key=SecretStr("app-k"), mode="chat")
            )
        yield r


async def test_the_context_is_reused_until_the_endpoint_or_an_app_changes(running: Running) -> None:
    gateway = running.gateway
    record, url = await gateway.endpoints.create("probe", ["a"], {})
    path = running.path(url)

    first = (await running.client.post(path)).json()
    second = (await running.client.post(path)).json()
    assert first["greeting"] == second["greeting"] == "hello"
    assert first["apps"] == {"a": "http://a.test/v1"}
    assert first["url"] == url
    assert seen[0][0] is seen[1][0]  # nothing changed: the same context serves both

    await gateway.endpoints.update(record.id, settings={"greeting": "hi"})
    assert (await running.client.post(path)).json()["greeting"] == "hi"
    assert seen[2][0] is not seen[1][0]

    await gateway.apps.update("a", AppUpdate(base_url="http://moved.test/v1", api_key=SecretStr("app-k"), mode="chat"))
    assert (await running.client.post(path)).json()["apps"] == {"a": "http://moved.test/v1"}
    assert seen[3][0] is not seen[2][0]

    await gateway.apps.update("a", AppUpdate(fallback="b"))
    await running.client.post(path)
    assert seen[4][0] is not seen[3][0]

    await gateway.endpoints.update(record.id, apps=["a", "b"])
    assert (await running.client.post(path)).json()["apps"] == {"a": "http://moved.test/v1", "b": "http://b.test/v1"}

    _, new_url = await gateway.endpoints.rotate(record.id)
    assert (await running.client.post(running.path(new_url))).json()["url"] == new_url
    # The old URL still works during its grace period, and the context names the current URL.
    assert (await running.client.post(path)).json()["url"] == new_url


async def test_each_endpoint_has_its_own_context(running: Running) -> None:
    _, url_a = await running.gateway.endpoints.create("probe", ["a"], {"greeting": "from a"})
    _, url_b = await running.gateway.endpoints.create("probe", ["b"], {"greeting": "from b"})
    for _ in range(2):
        assert (await running.client.post(running.path(url_a))).json()["greeting"] == "from a"
        assert (await running.client.post(running.path(url_b))).json()["greeting"] == "from b"
    assert seen[0][0] is seen[2][0] and seen[1][0] is seen[3][0] and seen[0][0] is not seen[1][0]


async def test_request_ids_are_distinct_unless_the_client_sends_one(running: Running) -> None:
    _, url = await running.gateway.endpoints.create("probe", [], {})
    path = running.path(url)
    ids = [(await running.client.post(path)).json()["request_id"] for _ in range(50)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) >= 16 and all(c in "0123456789abcdef" for c in i) for i in ids)
    sent = await running.client.post(path, headers={"x-request-id": "trace-me"})
    assert sent.json()["request_id"] == "trace-me"


async def test_a_reused_context_hands_out_the_same_parts_and_still_checks_permissions(running: Running) -> None:
    # The context serves every request of its endpoint: its parts are built once, not per access.
    _, kept = await running.gateway.endpoints.create("keeper", [], {})
    _, probed = await running.gateway.endpoints.create("probe", [], {})
    for url in (kept, kept, probed):
        await running.client.post(running.path(url))
    ctx, probe_ctx = seen[0][0], seen[2][0]
    assert ctx is seen[1][0]
    assert ctx.storage is ctx.storage and ctx.jobs is ctx.jobs and ctx.callbacks is ctx.callbacks
    await ctx.storage.set("k", "v")
    assert await ctx.storage.get("k") == "v"
    for _ in range(2):  # a part the plugin did not declare stays refused on every access
        with pytest.raises(PermissionDenied):
            probe_ctx.storage  # noqa: B018
        with pytest.raises(PermissionDenied):
            probe_ctx.jobs  # noqa: B018
        with pytest.raises(PermissionDenied):
            probe_ctx.callbacks  # noqa: B018
