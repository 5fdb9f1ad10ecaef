"""The gateway's own limits: answers at once (`Admission`), connections to Dify, idle streams.

Waiting for the gateway's own resources is `Overloaded` and never counts against a Dify app.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
import respx

from gateway.clock import FakeClock, SystemClock
from gateway.dify import DifyClient, RetryPolicy, make_http_client
from gateway.dify.admission import Admission
from gateway.exceptions import CircuitOpen, ConfigurationError, Overloaded, UpstreamTimeout
from tests.gateway.dify.conftest import BASE, PING, app, end, msg, sse_bytes, sse_response
from tests.gateway.dify.test_client import ASK

pytestmark = pytest.mark.anyio


def held_stream(release: anyio.Event) -> httpx.Response:
    """An answer that starts at once and ends when `release` is set."""

    async def body() -> AsyncIterator[bytes]:
        yield sse_bytes(msg("first"))
        await release.wait()
        yield sse_bytes(end())

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


async def test_answers_past_the_limit_are_overloaded_and_never_open_the_breaker(
    router: respx.MockRouter, make_client: Any
) -> None:
    client: DifyClient = make_client(max_concurrent_answers=1, answer_queue_timeout=5, breaker_threshold=1)
    release = anyio.Event()
    route = router.post(BASE + "/chat-messages").mock(side_effect=lambda r: held_stream(release))
    async with client.stream(app(), ASK) as running:
        await anext(running.deltas())
        for _ in range(3):  # the FakeClock lets the 5 s queue wait run out at once
            with pytest.raises(Overloaded) as caught:
                await client.ask(app(), ASK)
            assert caught.value.status_code == 503 and caught.value.retry_after == 5
        assert route.call_count == 1  # the refused answers never reached Dify
        release.set()
        await running.collect()
    assert client.admission.running == 0 and client.admission.waiting == 0
    route.mock(side_effect=lambda r: sse_response(msg("next"), end()))
    assert (await client.ask(app(), ASK)).text == "next"
    assert client.breakers.get("support", app().base_url).state == "closed"


async def test_a_queued_answer_runs_when_a_place_frees(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    client = DifyClient(http, clock=SystemClock(), max_concurrent_answers=1, answer_queue_timeout=60)
    release = anyio.Event()
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: held_stream(release))
    answers: list[str] = []

    async def ask() -> None:
        answers.append((await client.ask(app(), ASK)).text)

    async with anyio.create_task_group() as group:
        group.start_soon(ask)
        group.start_soon(ask)
        while client.admission.waiting < 1:  # noqa: ASYNC110 (one runs, the other waits its turn)
            await anyio.sleep(0.001)
        assert client.admission.running == 1
        release.set()
    assert answers == ["first", "first"]


async def test_admission_cancelled_while_waiting_keeps_no_place() -> None:
    admission = Admission(SystemClock(), limit=1, queue_timeout=60)
    await admission.enter()
    with anyio.move_on_after(0.01):
        await admission.enter()
    assert (admission.running, admission.waiting) == (1, 0)
    admission.leave()
    await admission.enter()  # the place is free again
    with pytest.raises(ConfigurationError):
        Admission(SystemClock(), limit=0, queue_timeout=1)


async def test_waiting_for_a_connection_is_overload_not_the_apps_fault(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    http = make_http_client(use_aiohttp=False, max_connections=1)
    try:
        client = DifyClient(
            http, clock=clock, timeout=httpx.Timeout(5.0, read=60.0, pool=0.05), breaker_threshold=1,
            retry=RetryPolicy(max_attempts=3), rng=random.Random(1),
        )  # fmt: skip
        release = anyio.Event()
        route = router.post(BASE + "/chat-messages").mock(side_effect=lambda r: held_stream(release))
        async with client.stream(app(), ASK) as running:  # holds the only connection
            await anext(running.deltas())
            for _ in range(3):
                with pytest.raises(Overloaded, match="connection limit") as caught:
                    await client.ask(app(), ASK)
                assert not isinstance(caught.value, CircuitOpen)
            release.set()
            await running.collect()
        assert route.call_count == 1
        route.mock(side_effect=lambda r: sse_response(msg("again"), end()))
        assert (await client.ask(app(), ASK)).text == "again"  # the slot came back; the breaker stayed shut
    finally:
        await http.aclose()


async def test_a_stream_of_pings_only_ends_with_upstream_timeout(
    router: respx.MockRouter, make_client: Any, clock: FakeClock
) -> None:
    client: DifyClient = make_client(idle_timeout=30)
    stops = router.post(BASE + "/chat-messages/task-1/stop").mock(return_value=httpx.Response(200, json={}))

    async def body() -> AsyncIterator[bytes]:
        yield sse_bytes(msg("Hi"))
        for _ in range(10):  # 100 s of Dify's keep-alive pings and nothing else
            clock.advance(10)
            yield PING.encode()
        yield sse_bytes(msg(" late"), end())

    route = router.post(BASE + "/chat-messages").mock(
        side_effect=lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())
    )
    shown = ""
    with pytest.raises(UpstreamTimeout, match="sent no answer for 30 s") as caught:
        async with client.stream(app(), ASK) as stream:
            async for delta in stream.deltas():
                shown += delta.text if delta.kind == "text" else ""
    assert caught.value.code == "upstream_timeout" and shown == "Hi"
    assert stops.call_count == 1  # the silent task is stopped upstream
    # Total silence (not even pings) ends at the same limit: it is the stream's read timeout.
    assert route.calls.last.request.extensions["timeout"]["read"] == 30


async def test_pings_between_tokens_are_fine(router: respx.MockRouter, make_client: Any, clock: FakeClock) -> None:
    client: DifyClient = make_client(idle_timeout=30)

    async def body() -> AsyncIterator[bytes]:
        for word in ("slow", " but", " steady"):
            clock.advance(25)
            yield (PING + sse_bytes(msg(word)).decode()).encode()
        yield sse_bytes(end())

    router.post(BASE + "/chat-messages").mock(
        side_effect=lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())
    )
    assert (await client.ask(app(), ASK)).text == "slow but steady"
