"""The Discord REST client: 429s, outages, refusals; against httpx.MockTransport on a fake clock."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from endpoints.discord.api import (
    ORIGINAL,
    ChannelSink,
    DiscordAPI,
    DiscordAPIError,
    InteractionSink,
    retry_after,
)
from endpoints.discord.messages import TryLater
from gateway.clock import FakeClock
from tests.support.fake_discord import PREFIX, FakeDiscord
from tests.support.gateway import live_server

pytestmark = pytest.mark.anyio

BASE = "https://discord.test/api/v10"


def api_with(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> tuple[DiscordAPI, FakeClock]:
    clock = FakeClock()
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return DiscordAPI(client, BASE + "/", clock=clock, **kwargs), clock  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("response", "seconds"),
    [
        (httpx.Response(429, json={"retry_after": 0.25}, headers={"retry-after": "1"}), 0.25),
        (httpx.Response(429, headers={"retry-after": "3"}), 3.0),
        (httpx.Response(429, json={"message": "slow down"}, headers={"retry-after": "2"}), 2.0),
        (httpx.Response(429, content=b"not json"), 1.0),
        (httpx.Response(429, headers={"retry-after": "soon"}), 1.0),
        (httpx.Response(429, json={"retry_after": "nan"}), 1.0),
        (httpx.Response(429, json={"retry_after": 3600}), 60.0),
        (httpx.Response(429, json={"retry_after": -5}), 0.0),
    ],
)
def test_retry_after(response: httpx.Response, seconds: float) -> None:
    assert retry_after(response) == seconds


async def test_an_urgent_call_waits_out_429s_and_outages() -> None:
    answers = iter(
        [
            httpx.Response(429, json={"retry_after": 1.5}),
            httpx.Response(502, text="bad gateway"),
            httpx.Response(200, json={"id": "m1"}),
        ]
    )
    api, clock = api_with(lambda request: next(answers))
    assert await api.request("POST", "/x") == {"id": "m1"}
    assert clock.monotonic() == 1.5 + 2.0  # retry_after, then the second backoff step


async def test_a_streaming_call_is_told_to_try_later() -> None:
    api, _ = api_with(lambda request: httpx.Response(429, json={"retry_after": 0.7}))
    with pytest.raises(TryLater) as later:
        await api.request("PATCH", "/x", wait=False)
    assert later.value.retry_after == 0.7


async def test_refusals_raise_at_once_without_the_url() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, json={"message": "Unknown Webhook", "code": 10015})

    api, _ = api_with(handler)
    with pytest.raises(DiscordAPIError) as caught:
        await InteractionSink(api, "1", "secret-token").edit(ORIGINAL, "hi", wait=True)
    assert len(calls) == 1
    assert (caught.value.status, caught.value.code, caught.value.message) == (404, 10015, "Unknown Webhook")
    assert "secret-token" not in str(caught.value)
    assert calls[0].url.path == "/api/v10/webhooks/1/secret-token/messages/@original"


async def test_network_errors_are_retried_then_reported_without_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}")

    api, clock = api_with(handler, attempts=3)
    with pytest.raises(DiscordAPIError) as caught:
        await api.request("POST", "/webhooks/1/secret-token")
    assert "secret-token" not in str(caught.value) and "ConnectError" in str(caught.value)
    assert clock.monotonic() == 1.0 + 2.0
    with pytest.raises(TryLater):
        await api.request("POST", "/webhooks/1/secret-token", wait=False)


async def test_answers_without_json_and_messages_without_ids() -> None:
    answers = iter([httpx.Response(204), httpx.Response(200, json={})])
    api, _ = api_with(lambda request: next(answers))
    assert await api.request("DELETE", "/x") is None
    with pytest.raises(DiscordAPIError, match="without an id"):
        await InteractionSink(api, "1", "t").send("hi", wait=True)


async def test_bot_routes_need_the_bot_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "DELETE":
            return httpx.Response(204)
        if request.method == "PUT":
            return httpx.Response(200, json=[{"name": "ask"}])
        return httpx.Response(200, json={"id": "5"})

    without, _ = api_with(handler)
    assert not without.has_bot_token
    with pytest.raises(DiscordAPIError, match="no bot token"):
        await ChannelSink(without, "42").send("hi", wait=True)
    api, _ = api_with(handler, bot_token="tok")
    sink = ChannelSink(api, "42")
    assert await sink.send("hi", wait=True) == "5"
    await sink.edit("5", "hello", wait=True)
    await sink.delete("5", wait=True)
    assert await api.put_commands("1", [{"name": "ask"}], "9") == [{"name": "ask"}]
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/api/v10/channels/42/messages"),
        ("PATCH", "/api/v10/channels/42/messages/5"),
        ("DELETE", "/api/v10/channels/42/messages/5"),
        ("PUT", "/api/v10/applications/1/guilds/9/commands"),
    ]
    assert all(r.headers["authorization"] == "Bot tok" for r in seen)
    assert all(r.headers["user-agent"].startswith("DiscordBot (") for r in seen)


async def test_interaction_follow_ups() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204) if request.method == "DELETE" else httpx.Response(200, json={"id": "77"})

    api, _ = api_with(handler)
    sink = InteractionSink(api, "1", "t")
    assert await sink.send("more", wait=True) == "77"
    await sink.delete("77", wait=True)
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/api/v10/webhooks/1/t"),
        ("DELETE", "/api/v10/webhooks/1/t/messages/77"),
    ]
    assert "authorization" not in seen[0].headers


# -- outages against the fake Discord on a real server -----------------------------------------


@pytest.mark.live
@pytest.mark.parametrize("fault", ["html", "html200", "hang"])
async def test_outages_are_retried_with_backoff(fault: str) -> None:
    fake = FakeDiscord(hang_seconds=1.0)
    fake.outages = [fault, fault]
    async with live_server(fake.app()) as base, httpx.AsyncClient() as http:
        clock = FakeClock()
        api = DiscordAPI(http, f"{base}{PREFIX}", clock=clock, timeout=0.2)
        assert await InteractionSink(api, "1", "secret-token").send("hi", wait=True)
        assert fake.visible("secret-token") == ["hi"]
        assert clock.monotonic() == 1.0 + 2.0


@pytest.mark.live
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("html", "Discord answered 502: Bad Gateway, and not JSON (3 tries)"),
        ("html200", "Discord answered 200: an answer that is not JSON (3 tries)"),
        ("hang", "Discord did not answer in time (ReadTimeout) (3 tries)"),
    ],
)
async def test_a_lasting_outage_is_a_clear_failure(fault: str, message: str) -> None:
    fake = FakeDiscord(hang_seconds=1.0)
    fake.outages = [fault] * 3
    async with live_server(fake.app()) as base, httpx.AsyncClient() as http:
        api = DiscordAPI(http, f"{base}{PREFIX}", clock=FakeClock(), attempts=3, timeout=0.2)
        with pytest.raises(DiscordAPIError) as caught:
            await InteractionSink(api, "1", "secret-token").send("hi", wait=True)
        assert str(caught.value) == message
        assert "secret-token" not in str(caught.value)
        assert fake.visible("secret-token") == []
