"""Legacy `/v1/completions` with the real `openai` SDK (sync and async, streaming and not) against
a real uvicorn gateway and a simulated Dify completion app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest

from gateway.simulator.config import SimulatorConfig
from tests.endpoints.openai.stack import Stack, openai_stack

pytestmark = [pytest.mark.anyio, pytest.mark.live]

WRITER = SimulatorConfig(mode="completion", first_token_latency=0, tokens_per_second=0)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with openai_stack(tmp_path, {"writer": WRITER}) as running:
        yield running


async def test_blocking_and_streaming_agree(stack: Stack) -> None:
    async with stack.client() as client:
        done = await client.completions.create(model="writer", prompt="a haiku ✨")
        stream = await client.completions.create(
            model="writer", prompt=["a haiku ✨"], stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert done.object == "text_completion" and done.model == "writer" and done.id.startswith("cmpl-")
    assert done.choices[0].text == "You said: a haiku ✨" and done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.total_tokens > 0
    *texts, usage = chunks
    assert "".join(c.choices[0].text for c in texts) == done.choices[0].text
    assert [c.choices[0].finish_reason for c in texts][-1] == "stop" and len({c.id for c in chunks}) == 1
    assert usage.choices == [] and usage.usage == done.usage
    (body, _) = await stack.generation_bodies("writer")
    assert body["inputs"] == {"query": "a haiku ✨"}  # a completion app takes the prompt as an input


async def test_sync_client_and_errors(stack: Stack) -> None:
    def run() -> str:
        with stack.sync_client() as client:
            return "".join(
                c.choices[0].text for c in client.completions.create(model="writer", prompt="x", stream=True)
            )

    assert await anyio.to_thread.run_sync(run) == "You said: x"
    async with stack.client() as client:
        unsupported: list[tuple[dict[str, Any], str]] = [
            ({"n": 2}, "n"),
            ({"echo": True}, "echo"),
            ({"logprobs": 2}, "logprobs"),
        ]
        for extra, param in unsupported:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.completions.create(model="writer", prompt="x", **extra)
            assert caught.value.param == param
        with pytest.raises(openai.BadRequestError) as many:
            await client.completions.create(model="writer", prompt=["a", "b"])
        assert many.value.param == "prompt"
        with pytest.raises(openai.NotFoundError):
            await client.completions.create(model="nope", prompt="x")
        with pytest.raises(openai.InternalServerError):
            await client.completions.create(model="writer", prompt="[[fault:500]]")
        stream = await client.completions.create(
            model="writer", prompt="one two three four [[fault:error-midstream]]", stream=True
        )
        with pytest.raises(openai.APIError) as midway:
            async for _ in stream:
                pass
        assert midway.value.code == "upstream_error"
