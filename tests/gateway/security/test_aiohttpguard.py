"""`guarded_connector`: aiohttp sessions (slack_sdk's) connect only where the policy allows, checked
on the addresses connected to: names through the guard's resolver, IP literals at the socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway.security.aiohttpguard import guarded_connector
from gateway.security.upstreams import upstream_policy
from tests.support.gateway import live_server

pytestmark = pytest.mark.anyio


class _Server:
    """Answers every request with 200 "ok" and counts them."""

    def __init__(self) -> None:
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def server() -> AsyncIterator[tuple[_Server, int]]:
    app = _Server()
    async with live_server(app) as base:
        port = httpx.URL(base).port
        assert port is not None
        yield app, port


async def _loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]  # what a rebound name answers at connect time


async def _get(connector: aiohttp.BaseConnector, url: str) -> str:
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as response:
        return await response.text()


async def test_a_name_resolving_to_a_private_address_is_refused(server: tuple[_Server, int]) -> None:
    app, port = server
    connector = guarded_connector(upstream_policy(()), resolver=_loopback, hint="; see GATEWAY_PRIVATE_UPSTREAMS")
    with pytest.raises(aiohttp.ClientConnectorError) as refused:
        await _get(connector, f"http://slack.rebind.test:{port}/api/auth.test?token=secret")
    message = str(refused.value)
    assert "non-public" in message and "GATEWAY_PRIVATE_UPSTREAMS" in message and "secret" not in message
    assert app.requests == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
async def test_an_ip_literal_is_checked_although_aiohttp_resolves_none(server: tuple[_Server, int], host: str) -> None:
    app, port = server
    with pytest.raises(aiohttp.ClientConnectorError, match="not a public address"):
        await _get(guarded_connector(upstream_policy(())), f"http://{host}:{port}/api")
    assert app.requests == 0


async def test_what_the_operator_allows_is_reached(server: tuple[_Server, int]) -> None:
    app, port = server
    networks = guarded_connector(upstream_policy(["127.0.0.0/8"]), resolver=_loopback)
    assert await _get(networks, f"http://slack.inside.test:{port}/api") == "ok"
    assert await _get(guarded_connector(upstream_policy(["127.0.0.0/8"])), f"http://127.0.0.1:{port}/api") == "ok"
    named = guarded_connector(upstream_policy(["slack.inside.test"]), resolver=_loopback)
    assert await _get(named, f"http://slack.inside.test:{port}/api") == "ok"
    assert app.requests == 3
