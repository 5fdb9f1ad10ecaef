"""The exception classes real clients raise for the gateway's errors (issue 17 item 5): the
`openai` SDK on the newer routes over the key's limit, the OpenAI Agents SDK with a bad key and a
failing Dify app, LangChain with a bad key; all against a real uvicorn gateway and the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import openai
import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner
from langchain_openai import ChatOpenAI

from gateway.simulator.config import SimulatorConfig
from tests.endpoints.openai.stack import FAST, Stack, openai_stack

pytestmark = [pytest.mark.anyio, pytest.mark.live]

WRITER = SimulatorConfig(mode="completion", first_token_latency=0, tokens_per_second=0)
WRONG_KEY = "sk-dgw-not-a-key-of-this-endpoint"
NO_TRACE = RunConfig(tracing_disabled=True)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with openai_stack(tmp_path, {"support": FAST, "writer": WRITER}) as running:
        yield running


def over_limit(caught: pytest.ExceptionInfo[openai.RateLimitError]) -> None:
    assert caught.value.code == "rate_limit_exceeded" and caught.value.status_code == 429
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60


async def test_the_key_limit_is_a_rate_limit_error_on_responses_and_completions(tmp_path: Path) -> None:
    apps = {"support": FAST, "writer": WRITER}
    async with openai_stack(tmp_path, apps, {"key_requests_per_minute": 2}) as stack:
        async with stack.client() as client:
            await client.responses.create(model="support", input="one")
            await client.responses.create(model="support", input="two")
            with pytest.raises(openai.RateLimitError) as blocking:
                await client.responses.create(model="support", input="three")
            with pytest.raises(openai.RateLimitError) as streaming:  # a status, before any event
                await client.responses.create(model="support", input="three", stream=True)
        async with stack.client(key=(await stack.action("add-key"))["key"]) as other:
            await other.completions.create(model="writer", prompt="one")
            await other.completions.create(model="writer", prompt="two", stream=True)
            with pytest.raises(openai.RateLimitError) as legacy:
                await other.completions.create(model="writer", prompt="three")
            with pytest.raises(openai.RateLimitError) as legacy_stream:
                await other.completions.create(model="writer", prompt="three", stream=True)
        generated = (
            (await stack.stats("support"))["generation_requests"],
            (await stack.stats("writer"))["generation_requests"],
        )
    for caught in (blocking, streaming, legacy, legacy_stream):
        over_limit(caught)
    assert generated == (2, 2)  # refused before Dify


async def test_the_key_concurrency_limit_on_responses(tmp_path: Path) -> None:
    slow = SimulatorConfig(first_token_latency=0, tokens_per_second=20)
    async with openai_stack(tmp_path, {"support": slow}, {"key_max_concurrent": 1}) as stack, stack.client() as client:
        stream = await client.responses.create(model="support", input="a long question " * 5, stream=True)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.responses.create(model="support", input="meanwhile")
        events = [event async for event in stream]
        assert events[-1].type == "response.completed"
        done = await client.responses.create(model="support", input="after")  # the slot came back
    assert caught.value.code == "rate_limit_exceeded" and caught.value.response.headers["retry-after"] == "1"
    assert done.status == "completed"


async def test_agents_sdk_raises_the_openai_errors(stack: Stack) -> None:
    async with stack.client(key=WRONG_KEY) as stranger, stack.client() as client:
        locked_out = Agent(name="Assistant", model=OpenAIResponsesModel(model="support", openai_client=stranger))
        with pytest.raises(openai.AuthenticationError) as bad_key:
            await Runner.run(locked_out, "hi", run_config=NO_TRACE)
        agent = Agent(name="Assistant", model=OpenAIResponsesModel(model="support", openai_client=client))
        with pytest.raises(openai.InternalServerError) as dify_failed:  # Dify 400 app_unavailable: our side
            await Runner.run(agent, "hi [[fault:400]]", run_config=NO_TRACE)
        with pytest.raises(openai.RateLimitError) as quota:
            await Runner.run(agent, "hi [[fault:429-quota]]", run_config=NO_TRACE)
        streamed = Runner.run_streamed(agent, "hi [[fault:500]]", run_config=NO_TRACE)
        with pytest.raises(openai.InternalServerError):
            async for _ in streamed.stream_events():
                pass
    assert bad_key.value.code == "invalid_api_key"
    assert dify_failed.value.status_code == 502 and dify_failed.value.code == "upstream_error"
    assert "simulator" not in dify_failed.value.message  # Dify's own text stays in the gateway's log
    assert quota.value.code == "insufficient_quota"


async def test_langchain_raises_the_openai_errors(stack: Stack) -> None:
    def run() -> None:
        for responses_api in (False, True):
            llm = ChatOpenAI(
                model="support",
                base_url=stack.base_url,
                api_key=WRONG_KEY,
                max_retries=0,
                use_responses_api=responses_api,
            )
            with pytest.raises(openai.AuthenticationError) as invoked:
                llm.invoke("hi")
            with pytest.raises(openai.AuthenticationError) as streamed:
                list(llm.stream("hi"))
            assert invoked.value.code == streamed.value.code == "invalid_api_key"
        good = ChatOpenAI(model="support", base_url=stack.base_url, api_key=stack.key, max_retries=0)
        with pytest.raises(openai.InternalServerError) as failed:
            good.invoke("hi [[fault:400]]")
        assert failed.value.status_code == 502

    await anyio.to_thread.run_sync(run)
