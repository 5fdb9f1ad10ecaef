"""Enforced structured output on chat completions, with the openai SDK and LangChain's
`with_structured_output`, against a real uvicorn gateway and the simulator (`[[say:...]]`
scripts the app's answers: broken JSON, then fixed JSON)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel

from gateway.simulator.config import SimulatorConfig
from tests.endpoints.openai.stack import FAST, Stack, openai_stack

pytestmark = [pytest.mark.anyio, pytest.mark.live]

PERSON: dict[str, object] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
SCHEMA_FORMAT: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": PERSON, "strict": True},
}
GOOD = '{"name": "Ann", "age": 3}'


class Person(BaseModel):
    name: str
    age: int


def ask(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    apps = {"support": FAST, "writer": SimulatorConfig(mode="completion", first_token_latency=0, tokens_per_second=0)}
    async with openai_stack(tmp_path, apps) as running:
        yield running


async def test_valid_json_in_prose_and_fences_is_extracted(stack: Stack) -> None:
    async with stack.client() as client:
        done = await client.chat.completions.create(
            model="support",
            messages=ask('who? [[say:Sure! ```json\n{"name": "Ann", "age": 3,}\n``` Anything else?]]'),
            response_format=SCHEMA_FORMAT,
        )
    assert json.loads(done.choices[0].message.content or "") == {"name": "Ann", "age": 3}
    (body,) = await stack.generation_bodies()
    assert '"required": ["name", "age"]' in body["query"]  # the schema went to the app as an instruction


async def test_a_broken_answer_is_reasked_in_the_same_conversation(stack: Stack) -> None:
    async with stack.client() as client:
        done = await client.chat.completions.create(
            model="support",
            messages=ask('who? [[say:{"name": "Ann"}]][[say:' + GOOD + "]]"),
            response_format=SCHEMA_FORMAT,
        )
    assert json.loads(done.choices[0].message.content or "") == {"name": "Ann", "age": 3}
    first, second = await stack.generation_bodies()
    assert second["conversation_id"] == (await stack.stats())["recent_requests"][-1]["body"]["conversation_id"]
    assert "conversation_id" not in first and second["conversation_id"]
    assert "'age' is a required property" in second["query"]
    # usage covers both answers
    assert done.usage is not None and done.usage.completion_tokens > len(GOOD.split())


async def test_json_object_mode_and_completion_apps(stack: Stack) -> None:
    async with stack.client() as client:
        done = await client.chat.completions.create(
            model="writer",
            messages=ask("facts [[say:not json]][[say:" + '{"ok": true}' + "]]"),
            response_format={"type": "json_object"},
        )
    # The completion app has no conversation: the re-ask repeats the question with the errors.
    assert done.choices[0].message.content == '{"ok": true}'
    bodies = await stack.generation_bodies("writer")
    assert len(bodies) == 2 and "Your previous answer:\nnot json" in bodies[1]["inputs"]["query"]


async def test_still_invalid_is_an_openai_error_and_never_retried(stack: Stack) -> None:
    async with stack.client(max_retries=2) as client:
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            await client.chat.completions.create(
                model="support",
                messages=ask("who? [[say:nope]]"),
                response_format=SCHEMA_FORMAT,
            )
        assert caught.value.code == "structured_output_invalid"
        assert "not JSON" in caught.value.message
        with pytest.raises(openai.UnprocessableEntityError):
            stream = await client.chat.completions.create(
                model="support",
                messages=ask("who? [[say:nope]]"),
                response_format=SCHEMA_FORMAT,
                stream=True,
            )
            async for _ in stream:
                pass
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(
                model="support",
                messages=ask("x"),
                response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": 5}}},
            )
        assert bad.value.param == "response_format.json_schema.schema"
    assert (await stack.stats())["generation_requests"] == 4  # two answers per structured call, no SDK retry


async def test_fallback_value_is_marked(tmp_path: Path) -> None:
    async with openai_stack(tmp_path, settings={"structured_fallback": {"person": {"name": "?", "age": 0}}}) as stack:
        async with stack.client() as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="support",
                messages=ask("who? [[say:nope]]"),
                response_format=SCHEMA_FORMAT,
            )
    done = raw.parse()
    assert json.loads(done.choices[0].message.content or "") == {"name": "?", "age": 0}
    assert raw.headers["x-structured-fallback"] == "1" and (done.model_extra or {})["structured_fallback"] is True


async def test_streaming_sends_only_the_validated_json(stack: Stack) -> None:
    async with stack.client() as client:
        stream = await client.chat.completions.create(
            model="support",
            messages=ask('who? [[say:{"name": "Ann", "age": "three"}]][[say:' + GOOD + "]]"),
            response_format=SCHEMA_FORMAT,
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"name": "Ann", "age": 3} and "three" not in text
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_langchain_with_structured_output_both_methods(stack: Stack) -> None:
    def run() -> list[Any]:
        llm = ChatOpenAI(model="support", base_url=stack.base_url, api_key=stack.key, max_retries=0)
        by_schema = llm.with_structured_output(Person, method="json_schema")
        by_mode = llm.with_structured_output(Person, method="json_mode")
        return [
            by_schema.invoke('who? [[say:{"name": "Ann"}]][[say:' + GOOD + "]]"),
            by_mode.invoke("who, as JSON? [[say:```" + GOOD + "```]]"),
        ]

    results = await anyio.to_thread.run_sync(run)
    assert results == [Person(name="Ann", age=3), Person(name="Ann", age=3)]
