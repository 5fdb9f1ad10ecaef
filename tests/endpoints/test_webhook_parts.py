"""Parts of the webhook plugin on their own, in the plugin test kit's `FakeContext` (apps answered
by the Dify simulator in process; no servers): the SSE relay and a task whose app is gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

import endpoints.webhook as webhook
from gateway.clock import SystemClock
from gateway.plugin import new_webhook_secret
from gateway.simulator.config import SimulatorConfig
from gateway.testing import FakeContext, webhook_request

pytestmark = pytest.mark.anyio

SECRET = new_webhook_secret()


def _events(frames: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in frames:
        name, data = frame.decode().strip().split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


async def test_deltas_after_a_heartbeat_are_still_relayed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pause longer than the heartbeat (a slow first token, a long tool call) must add a ping,
    # not end the relay: wait_for() used to cancel the events generator, losing every later delta.
    monkeypatch.setattr(webhook, "HEARTBEAT_SECONDS", 0.02)
    slow = SimulatorConfig(answer="Hello there", first_token_latency=0.1, tokens_per_second=0)
    # The system clock: the simulator's silence must be real for the relay's heartbeat to see it.
    async with FakeContext(webhook.plugin, {"secret": SECRET}, apps={"support": slow}, clock=SystemClock()) as ctx:
        signed = webhook_request(SECRET, {"query": "hi", "user": "u1", "stream": True}, timestamp=ctx.clock.time())
        response = await ctx.dispatch(signed.request())
        assert response.status == 200 and response.media_type == "text/event-stream"
        assert not isinstance(response.body, bytes)  # streamed
        frames = [frame async for frame in response.body]

    events = _events(frames)
    names = [name for name, _ in events]
    assert names[0] == "task" and names[-1] == "done" and "ping" in names
    assert "".join(data["text"] for name, data in events if name == "delta") == "Hello there"
    assert events[-1][1]["answer"] == "Hello there"


async def test_a_task_whose_app_is_no_longer_bound_fails_instead_of_retrying() -> None:
    async with FakeContext(webhook.plugin, {"secret": SECRET}, apps={"a": SimulatorConfig()}) as ctx:
        task_id = await ctx.jobs.enqueue("answer", {"query": "q", "user": "u", "app": "gone"})
        [run] = await ctx.jobs.run_all()
    assert (run.id, run.state, run.attempts) == (task_id, "done", 1)
    assert run.result is not None and run.result["status"] == "failed"
    assert run.result["error"]["code"] == "not_found"


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for _ in range(depth):
        schema = {"not": schema}
    return schema


@pytest.mark.parametrize(
    ("schema", "says"),
    [({"type": 5}, "not a valid JSON Schema: 5 is not valid"), (_nested(5000), "nested too deeply")],
)
def test_a_response_schema_that_is_not_one_is_refused_with_the_reason(schema: dict[str, Any], says: str) -> None:
    # The same check as the OpenAI plugin's schemas (gateway.plugin.schema_error), not a second one.
    with pytest.raises(ValidationError, match=says):
        webhook.WebhookSettings(secret=new_webhook_secret(), response_schema=schema)


def test_the_call_action_skips_stream_events_that_are_not_json() -> None:
    # Something between the CLI and the gateway (a proxy) may mangle a line: no traceback for it.
    blocks = ['event: task\ndata: {"t": 1}', "event: delta\ndata: {oops", 'event: done\ndata: {"answer": "hi"}']
    text = "".join(block + "\n\n" for block in blocks)
    result = webhook._streamed(text)
    assert result.ok
    assert [e["event"] for e in result.events or ()] == ["task", "done"]


class _WaitingRun:
    """A run whose first event comes when the test says so."""

    id = "job_1"
    local = True

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.reading = asyncio.Event()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        self.reading.set()
        await self.go.wait()
        yield {"type": "delta", "text": "Hi"}


async def test_a_waiting_stream_relays_without_a_task_of_its_own() -> None:
    # Each open stream is one request task; a task more per stream to read the run's events (so a
    # heartbeat could wait beside it) cost memory on every open stream.
    async with FakeContext(webhook.plugin, {"secret": SECRET}) as ctx:
        run = _WaitingRun()
        body = webhook._sse(run, ctx)
        assert _events([await anext(body)]) == [("task", {"task_id": "job_1"})]
        before = len(asyncio.all_tasks())

        async def next_frame() -> bytes:
            return await anext(body)

        reader = asyncio.create_task(next_frame())
        await run.reading.wait()
        await asyncio.sleep(0)
        assert len(asyncio.all_tasks()) == before + 1  # the reader only
        run.go.set()
        assert _events([await reader]) == [("delta", {"text": "Hi"})]
        await body.aclose()  # type: ignore[attr-defined]
