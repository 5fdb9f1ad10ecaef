"""`/v1/responses` driven by the real `openai` SDK (sync and async, streaming and not), LangChain's
`ChatOpenAI(use_responses_api=True)` and the OpenAI Agents SDK, against a real uvicorn gateway
and the Dify simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner
from langchain_openai import ChatOpenAI
from openai.lib.streaming.responses import ResponseStreamEvent
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFailedEvent,
    ResponseReasoningItem,
    ResponseTextConfigParam,
)

from gateway.simulator.config import SimulatorConfig
from tests.endpoints.openai.stack import FAST, Stack, openai_stack

pytestmark = [pytest.mark.anyio, pytest.mark.live]

AGENT = SimulatorConfig(mode="agent-chat", first_token_latency=0, tokens_per_second=0)
SEQUENCE = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
CLOSING = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with openai_stack(tmp_path, {"support": FAST, "thinker": AGENT}, {"broadcast_model": "all"}) as running:
        yield running


async def test_async_blocking_and_streaming_agree(stack: Stack) -> None:
    async with stack.client() as client:
        done = await client.responses.create(model="support", input="hi there", instructions="Be brief.")
        assert done.object == "response" and done.status == "completed" and done.model == "support"
        assert done.output_text == "You said: Be brief. hi there"
        assert done.usage is not None and done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
        assert done.created_at > 1_600_000_000 and done.id.startswith("resp_")
        stream = await client.responses.create(model="support", input="hi there", stream=True)
        events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == SEQUENCE and kinds[-4:] == CLOSING
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "You said: hi there"
    assert isinstance(events[-1], ResponseCompletedEvent)
    final = events[-1].response
    assert final.output_text == text and final.status == "completed"
    assert final.usage is not None and final.usage.total_tokens > 0


async def test_sync_client_and_stored_responses(stack: Stack) -> None:
    def run() -> tuple[Response, Response, Response, list[ResponseStreamEvent[None]]]:
        with stack.sync_client() as client:
            first = client.responses.create(model="support", input=[{"role": "user", "content": "one"}])
            fetched = client.responses.retrieve(first.id)
            second = client.responses.create(model="support", input="two", previous_response_id=first.id)
            with client.responses.stream(model="support", input="three", previous_response_id=second.id) as stream:
                events = list(stream)
            return first, fetched, second, events

    first, fetched, second, events = await anyio.to_thread.run_sync(run)
    assert fetched.id == first.id and fetched.output_text == first.output_text == "You said: one"
    assert second.output_text == "You said: two" and second.previous_response_id == first.id
    assert events[-1].type == "response.completed"
    bodies = await stack.generation_bodies()
    # previous_response_id continues the one Dify conversation
    assert "conversation_id" not in bodies[0]
    assert bodies[1]["conversation_id"] == bodies[2]["conversation_id"] and bodies[1]["conversation_id"]


async def test_store_false_keeps_nothing(stack: Stack) -> None:
    async with stack.client() as client:
        done = await client.responses.create(model="support", input="secret", store=False)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(done.id)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="support", input="more", previous_response_id=done.id)
        assert caught.value.param == "previous_response_id"
        kept = await client.responses.create(model="support", input="kept")
        async with stack.client(key=(await stack.action("add-key"))["key"]) as other:
            with pytest.raises(openai.NotFoundError):
                await other.responses.retrieve(kept.id)  # another key never sees it


async def test_reasoning_summaries_from_agent_thoughts(stack: Stack) -> None:
    async with stack.client() as client:
        done = await client.responses.create(model="thinker", input="why", reasoning={"summary": "auto"})
        assert [item.type for item in done.output] == ["reasoning", "message"]
        assert isinstance(done.output[0], ResponseReasoningItem)
        assert done.output[0].summary[0].text == "You said: why"
        plain = await client.responses.create(model="thinker", input="why")
        assert [item.type for item in plain.output] == ["message"]
        stream = await client.responses.create(model="thinker", input="why", reasoning={"summary": "auto"}, stream=True)
        events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert "response.reasoning_summary_text.delta" in kinds and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_unsupported_features_and_errors_are_openai_errors(stack: Stack) -> None:
    async with stack.client() as client:
        tool = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}
        cases: list[tuple[dict[str, Any], str]] = [
            ({"tools": [tool]}, "tools"),
            ({"background": True}, "background"),
            ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input[0]"),
            ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
            ({"model": "all"}, "model"),
        ]
        for extra, param in cases:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.responses.create(**{"model": "support", "input": "x", **extra})
            assert caught.value.param == param
        with pytest.raises(openai.NotFoundError) as missing:
            await client.responses.create(model="nope", input="x")
        assert missing.value.code == "model_not_found"
        async with stack.client(key="sk-wrong-key-123456789") as stranger:
            with pytest.raises(openai.AuthenticationError):
                await stranger.responses.create(model="support", input="x")
        with pytest.raises(openai.RateLimitError):  # Dify 429 before the stream: a status, not an event
            await client.responses.create(model="support", input="[[fault:429-quota]]", stream=True)
        with pytest.raises(openai.InternalServerError):
            await client.responses.create(model="support", input="[[fault:400]]")
        stream = await client.responses.create(
            model="support", input="a long question [[fault:error-midstream]]", stream=True
        )
        events = [event async for event in stream]
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert isinstance(events[-1], ResponseFailedEvent)
    error = events[-1].response.error  # the gateway's own code, not one of OpenAI's Literal values:
    assert error is not None and error.to_dict()["code"] == "upstream_error"


async def test_structured_text_format(stack: Stack) -> None:
    schema: dict[str, object] = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt: ResponseTextConfigParam = {"format": {"type": "json_schema", "name": "num", "schema": schema, "strict": True}}
    async with stack.client() as client:
        done = await client.responses.create(model="support", input='n? [[say:{"n": "x"}]][[say:{"n": 2}]]', text=fmt)
        assert json.loads(done.output_text) == {"n": 2}
        assert done.text is not None and done.text.format is not None and done.text.format.type == "json_schema"
        stream = await client.responses.create(
            model="support",
            input='n? [[say:{"n": "x"}]][[say:{"n": 5}]]',
            text=fmt,
            stream=True,
        )
        events = [event async for event in stream]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ['{"n": 5}'] and events[-1].type == "response.completed"


async def test_langchain_responses_api(stack: Stack) -> None:
    def run() -> tuple[Any, str]:
        llm = ChatOpenAI(
            model="support", base_url=stack.base_url, api_key=stack.key, use_responses_api=True, max_retries=0
        )
        message = llm.invoke("hello")
        streamed = "".join(chunk.text for chunk in llm.stream("hello"))
        return message, streamed

    message, streamed = await anyio.to_thread.run_sync(run)
    assert message.text == "You said: hello" == streamed


async def test_openai_agents_runner(stack: Stack) -> None:
    async with stack.client() as client:
        model = OpenAIResponsesModel(model="support", openai_client=client)
        agent = Agent(name="Assistant", instructions="You help.", model=model)
        result = await Runner.run(agent, "What is Dify?", run_config=RunConfig(tracing_disabled=True))
        assert result.final_output == "You said: You help. What is Dify?"
        bad = Agent(name="Bad", model=OpenAIResponsesModel(model="nope", openai_client=client))
        with pytest.raises(openai.NotFoundError):
            await Runner.run(bad, "hi", run_config=RunConfig(tracing_disabled=True))
