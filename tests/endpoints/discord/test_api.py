"""The Discord REST client and the adapter's calls: 429s, outages, refusals; against httpx.MockTransport
on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from endpoints.discord.api import DiscordAPI, DiscordAPIError, retry_after
from endpoints.discord.messages import ORIGINAL, DiscordMessages
from endpoints.discord.rendering import chat_rules
from gateway.clock import FakeClock
from gateway.exceptions import RateLimited
from tests.support.fake_discord import PREFIX, FakeDiscord
from tests.support.gateway import live_server

pytestmark = pytest.mark.anyio

BASE = "https://discord.test/api/v10"
RULES = chat_rules(1.0)


def webhook(api: DiscordAPI, token: str = "t") -> DiscordMessages:
    return DiscordMessages.interaction(api, RULES, "1", token)


def api_with(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> tuple[DiscordAPI, FakeClock]:
    clock = FakeClock()
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return DiscordAPI(client, BASE + "/", clock=clock, **kwargs), clock


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


async def test_outages_are_waited_out_and_a_429_is_passed_on_with_its_wait() -> None:
    answers = iter(
        [
            httpx.Response(502, text="bad gateway"),
            httpx.Response(200, json={"id": "m1"}),
            httpx.Response(429, json={"retry_after": 0.7}),
        ]
    )
    api, clock = api_with(lambda request: next(answers))
    assert await api.request("POST", "/x") == {"id": "m1"}
    assert clock.monotonic() == 1.0  # the first backoff step
    with pytest.raises(RateLimited) as limited:  # the chat-delivery engine waits it out and tries again
        await api.request("PATCH", "/x")
    assert limited.value.retry_after == 0.7
    assert clock.monotonic() == 1.0


async def test_refusals_raise_at_once_without_the_url() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, json={"message": "Unknown Webhook", "code": 10015})

    api, _ = api_with(handler)
    with pytest.raises(DiscordAPIError) as caught:
        await webhook(api, "secret-token").edit(ORIGINAL, "hi")
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


async def test_answers_without_json_and_messages_without_ids() -> None:
    answers = iter([httpx.Response(204), httpx.Response(200, json={})])
    api, _ = api_with(lambda request: next(answers))
    assert await api.request("DELETE", "/x") is None
    with pytest.raises(DiscordAPIError, match="without an id"):
        await webhook(api).post("hi")


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
        await DiscordMessages.channel(without, RULES, "42").post("hi")
    api, _ = api_with(handler, bot_token="tok")
    channel = DiscordMessages.channel(api, RULES, "42")
    assert await channel.post("hi") == "5"
    await channel.edit("5", "hello")
    await channel.delete("5")
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
    follow_ups = webhook(api)
    assert await follow_ups.post("more") == "77"
    await follow_ups.delete("77")
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
        assert await webhook(api, "secret-token").post("hi")
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
            await webhook(api, "secret-token").post("hi")
        assert str(caught.value) == message
        assert "secret-token" not in str(caught.value)
        assert fake.visible("secret-token") == []


@pytest.mark.parametrize(("status", "raised"), [(404, False), (403, True)])
async def test_a_message_already_gone_is_no_error_other_refusals_are(status: int, raised: bool) -> None:
    api, _ = api_with(lambda request: httpx.Response(status, json={"message": "no", "code": 10008}))
    if raised:
        with pytest.raises(DiscordAPIError):
            await webhook(api).delete("77")
    else:
        await webhook(api).delete("77")  # deleted by hand meanwhile: nothing left to do


async def test_a_retry_after_an_outage_is_fenced_again() -> None:
    # The engine fences each call; a retry inside the client, after a wait, is checked again, so a
    # run that lost its job's lease meanwhile does not write.
    class Stale(Exception):
        pass

    checks: list[float] = []

    async def fence() -> None:
        checks.append(clock.monotonic())
        raise Stale

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(502, text="bad gateway")

    api, clock = api_with(handler, fence=fence)
    with pytest.raises(Stale):
        await api.request("POST", "/x")
    assert len(seen) == 1 and checks == [1.0]
