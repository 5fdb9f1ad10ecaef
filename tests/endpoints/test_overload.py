"""A gateway at its answer limit answers in each surface's own shape: 503 + Retry-After.

Real uvicorn servers (gateway and Dify simulator), the real `openai` client and Standard Webhooks
signatures. One answer place per process and a short queue: a slow answer holds the place.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypedDict

import anyio
import httpx
import openai
import pytest

from gateway.clock import SystemClock
from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.endpoints.openai.stack import openai_stack
from tests.support.gateway import admin_headers, live_app, live_server, make_settings
from tests.support.webhooks import signed_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]

SLOW = SimulatorConfig(first_token_latency=0, tokens_per_second=8)  # paced by a `HeldAnswers` clock
LONG = "one two three four five six seven eight nine ten eleven twelve"


class HeldAnswers(SystemClock):
    """The simulator's clock: its answers stop after their first token (which needs no wait with
    `first_token_latency=0`) until `go_on()`. A slow answer then holds the only answer place for
    exactly as long as the test needs, however slowly a loaded machine runs the rest."""

    def __init__(self) -> None:
        self._going = asyncio.Event()

    def go_on(self) -> None:
        self._going.set()

    async def sleep(self, seconds: float) -> None:
        await self._going.wait()
        await super().sleep(seconds)


class Limits(TypedDict):
    max_concurrent_answers: int
    answer_queue_timeout: float


class Signed(TypedDict):
    content: bytes
    headers: dict[str, str]


ONE_PLACE: Limits = {"max_concurrent_answers": 1, "answer_queue_timeout": 0.2}


async def wait_for_first_text(lines: AsyncIterator[str], marker: str) -> None:
    async for line in lines:
        if marker in line:
            return


async def test_webhook_overload_is_503_with_retry_after_and_the_task_runs_later(tmp_path: Path) -> None:
    held = HeldAnswers()
    async with (
        live_server(create_simulator_app(SLOW, clock=held)) as simulator,
        live_app(lambda url: create_app(make_settings(tmp_path, public_url=url, **ONE_PLACE))) as gateway,
        httpx.AsyncClient(timeout=30) as client,
    ):
        app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": "chat"}
        assert (await client.post(f"{gateway}/admin/api/apps", json=app, headers=admin_headers())).status_code == 201
        created = await client.post(
            f"{gateway}/admin/api/endpoints", json={"plugin": "webhook", "apps": ["support"]}, headers=admin_headers()
        )
        url, secret = created.json()["url"], created.json()["secrets"]["secret"]

        def signed(payload: dict[str, object], msg_id: str | None = None) -> Signed:
            body = json.dumps(payload).encode()
            return {"content": body, "headers": signed_headers(secret, body, msg_id)}

        busy = signed({"query": LONG, "user": "u1", "stream": True})
        async with client.stream("POST", url, **busy) as holding:
            lines = holding.aiter_lines()
            await wait_for_first_text(lines, "event: delta")  # the only place is taken
            refused = await client.post(url, **signed({"query": "hi", "user": "u2"}, "msg_refused"))
            streamed = await client.post(url, **signed({"query": "hi", "user": "u3", "stream": True}))
            held.go_on()
            async for _ in lines:
                pass
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        body = refused.json()
        assert body["state"] == "queued" and body["task_id"].startswith("job_")
        assert body["error"]["code"] == "overloaded" and body["error"]["retry_after"] == 5
        assert "1 questions at once" in body["error"]["message"]
        events = [block for block in streamed.text.strip().split("\n\n") if block.startswith("event: error")]
        assert len(events) == 1 and '"code": "overloaded"' in events[0] and '"retry_after": 5' in events[0]
        # The caller retries with the same webhook-id once there is room: the queued task answers.
        again = await client.post(url, **signed({"query": "hi", "user": "u2"}, "msg_refused"))
        assert again.status_code == 200, again.text
        assert again.json()["task_id"] == body["task_id"] and again.json()["answer"] == "You said: hi"


async def test_openai_overload_is_the_sdks_503_with_retry_after(tmp_path: Path) -> None:
    held = HeldAnswers()
    async with openai_stack(tmp_path, apps={"support": SLOW}, simulator_clock=held, **ONE_PLACE) as stack:
        client = stack.client()
        holding = await client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": LONG}], stream=True
        )
        async for chunk in holding:  # the first text: the only answer place is taken
            if chunk.choices and chunk.choices[0].delta.content:
                break
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(
                    model="support", messages=[{"role": "user", "content": "hi"}], stream=stream
                )
            assert caught.value.status_code == 503
            assert caught.value.response.headers["retry-after"] == "5"
            assert caught.value.code == "overloaded" and caught.value.type == "server_error"
        held.go_on()
        async for _ in holding:
            pass
        answer = await client.chat.completions.create(model="support", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "You said: hi"
        await client.close()


async def test_many_concurrent_streams_all_complete_through_a_small_admission_limit(tmp_path: Path) -> None:
    """300 answer streams at once, 20 places, the aiohttp transport: all complete, none refused."""
    fast = SimulatorConfig(first_token_latency=0.05, tokens_per_second=200)
    places: Limits = {"max_concurrent_answers": 20, "answer_queue_timeout": 60}
    async with openai_stack(tmp_path, apps={"support": fast}, use_aiohttp=True, **places) as stack:
        client = stack.client(timeout=120, http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=400)))
        texts: list[str] = []

        async def one(index: int) -> None:
            stream = await client.chat.completions.create(
                model="support", messages=[{"role": "user", "content": f"question {index}"}], stream=True
            )
            text = ""
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
            texts.append(text)

        async with anyio.create_task_group() as group:
            for index in range(300):
                group.start_soon(one, index)
        assert sorted(texts) == sorted(f"You said: question {i}" for i in range(300))
        stats = await stack.stats()
        assert stats["streams_completed"] >= 300 and stats["active_tasks"] == 0
        await client.close()
        await asyncio.sleep(0)
