"""The openai plugin driven by the real `openai` SDK (sync and async) against a real uvicorn
gateway and the Dify simulator: shapes, streaming rules, continuity, errors, disconnects."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam

from gateway.simulator.config import SimulatorConfig
from tests.endpoints.openai.stack import FAST, Stack, openai_stack

pytestmark = [pytest.mark.anyio, pytest.mark.live]

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi there"}]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    support = dataclasses.replace(FAST, file_upload=True)  # takes images (by URL)
    async with openai_stack(tmp_path, {"support": support, "coder": FAST}, {"broadcast_model": "all"}) as running:
        yield running


def frames(raw: str) -> list[str]:
    """The `data:` payloads of an SSE body, asserting nothing else (no `event:` lines) is in it."""
    out = []
    for block in raw.split("\n\n"):
        if not block or block.startswith(":"):
            continue
        assert block.startswith("data: ") and "\n" not in block, block
        out.append(block.removeprefix("data: "))
    return out


async def test_models_list_and_retrieve(stack: Stack) -> None:
    async with stack.client() as client:
        listed = await client.models.list()
        assert [m.id for m in listed.data] == ["support", "coder", "all"]
        assert all(m.object == "model" and m.owned_by == "dify" and m.created > 1_600_000_000 for m in listed.data)
        again = await client.models.retrieve("support")
        assert again.created == listed.data[0].created
        with pytest.raises(openai.NotFoundError) as caught:
            await client.models.retrieve("nope")
        assert caught.value.code == "model_not_found"
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="support", input="x")  # out of scope: an OpenAI-style 404


async def test_sync_client_blocking_and_streaming_agree(stack: Stack) -> None:
    def run() -> tuple[Any, list[Any]]:
        with stack.sync_client() as client:
            blocking = client.chat.completions.create(model="support", messages=HI)
            chunks = list(
                client.chat.completions.create(
                    model="support", messages=HI, stream=True, stream_options={"include_usage": True}
                )
            )
            return blocking, chunks

    blocking, chunks = await anyio.to_thread.run_sync(run)
    assert blocking.object == "chat.completion" and blocking.model == "support"
    assert blocking.choices[0].message.content == "You said: hi there"
    assert blocking.choices[0].finish_reason == "stop"
    assert blocking.usage.total_tokens == blocking.usage.prompt_tokens + blocking.usage.completion_tokens > 0
    assert blocking.created > 1_600_000_000
    # Streaming: one id and created, the role first, finish_reason last, then the usage chunk.
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.model == "support" and c.object == "chat.completion.chunk" for c in chunks)
    *choice_chunks, usage_chunk = chunks
    assert choice_chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in choice_chunks[1:])
    assert [c.choices[0].finish_reason for c in choice_chunks] == [None] * (len(choice_chunks) - 1) + ["stop"]
    assert "".join(c.choices[0].delta.content or "" for c in choice_chunks) == blocking.choices[0].message.content
    assert usage_chunk.choices == [] and usage_chunk.usage == blocking.usage  # Dify's own counts


async def test_async_client_streams_and_sse_frames_are_exact(stack: Stack) -> None:
    async with stack.client() as client:
        stream = await client.chat.completions.create(model="support", messages=HI, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "You said: hi there"
    body = {"model": "support", "messages": HI, "stream": True}
    headers = {"authorization": f"Bearer {stack.key}"}
    async with stack.http.stream("POST", f"{stack.base_url}/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
        raw = (await r.aread()).decode()
    payloads = frames(raw)
    assert raw.endswith("data: [DONE]\n\n") and payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all("usage" not in c and isinstance(c["choices"], list) for c in chunks)  # no include_usage
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    body["stream_options"] = {"include_usage": True}
    response = await stack.http.post(f"{stack.base_url}/chat/completions", json=body, headers=headers)
    chunks = [json.loads(p) for p in frames(response.text)[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_non_ascii_and_emoji_round_trip(stack: Stack) -> None:
    text = "héllo wörld 👋 你好"
    async with stack.client() as client:
        answer = await client.chat.completions.create(model="support", messages=[{"role": "user", "content": text}])
        assert answer.choices[0].message.content == f"You said: {text}"
        stream = await client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": text}], stream=True
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream]) == f"You said: {text}"


async def test_three_turns_continue_one_dify_conversation(stack: Stack) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
    ]
    async with stack.client() as client:
        first = await client.chat.completions.create(model="support", messages=messages, user="alice")
        messages += [{"role": "assistant", "content": first.choices[0].message.content}]
        messages += [{"role": "user", "content": "two"}]
        # Turn two streams: the streamed answer is remembered before [DONE].
        stream = await client.chat.completions.create(model="support", messages=messages, user="alice", stream=True)
        second = "".join([c.choices[0].delta.content or "" async for c in stream])
        messages += [{"role": "assistant", "content": second}, {"role": "user", "content": "three"}]
        third = await client.chat.completions.create(model="support", messages=messages, user="alice")
        fresh = await client.chat.completions.create(model="support", messages=messages[:2], user="alice")
    bodies = await stack.generation_bodies()
    assert [b["query"] for b in bodies] == ["Be brief.\n\none", "two", "three", "Be brief.\n\none"]
    assert "conversation_id" not in bodies[0] and "conversation_id" not in bodies[3]
    assert bodies[1]["conversation_id"] == bodies[2]["conversation_id"]
    assert all(b["user"].startswith("openai:key_") and b["user"].endswith(":alice") for b in bodies)
    assert third.conversation_id == first.conversation_id != fresh.conversation_id  # type: ignore[attr-defined]
    stats = await stack.stats()
    assert stats["conversations"] == 2


async def test_conversation_id_extension_and_system_input(tmp_path: Path) -> None:
    async with openai_stack(tmp_path, settings={"system_input": "persona"}) as stack, stack.client() as client:
        system: ChatCompletionMessageParam = {"role": "system", "content": "You are a pirate."}
        first = await client.chat.completions.create(
            model="support", messages=[system, {"role": "user", "content": "ahoy"}], extra_body={"inputs": {"x": 1}}
        )
        thread = first.conversation_id  # type: ignore[attr-defined]
        raw = await client.chat.completions.with_raw_response.create(
            model="support", messages=[{"role": "user", "content": "again"}], extra_body={"conversation_id": thread}
        )
        assert raw.headers["x-conversation-id"] == thread
        bodies = await stack.generation_bodies()
    assert bodies[0]["query"] == "ahoy" and bodies[0]["inputs"] == {"x": 1, "persona": "You are a pirate."}
    assert bodies[1]["query"] == "again" and bodies[1]["conversation_id"]


async def test_errors_before_the_stream_are_openai_errors(stack: Stack) -> None:
    async with stack.client(key="sk-dgw-wrong") as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(model="support", messages=HI)
        assert caught.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(model="support", messages=HI, stream=True)
    async with stack.client(key="app-simulator") as dify_key, stack.client() as client:
        with pytest.raises(openai.AuthenticationError):  # the Dify app key is never a client key
            await dify_key.models.list()
        with pytest.raises(openai.NotFoundError) as not_found:
            await client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
        assert not_found.value.code == "model_not_found" and not_found.value.param == "model"
        with pytest.raises(openai.BadRequestError) as bad_n:
            await client.chat.completions.create(model="support", messages=HI, n=2)
        assert bad_n.value.param == "n"
        with pytest.raises(openai.BadRequestError) as bad_role:
            # A role OpenAI does not have, on purpose: the gateway must name the field.
            wizard = {"role": "wizard", "content": "x"}
            await client.chat.completions.create(model="support", messages=[wizard])  # type: ignore[list-item]
        assert bad_role.value.param == "messages[0].role"
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="support", messages=[])
        with pytest.raises(openai.APIStatusError) as upstream:  # Dify 400 app_unavailable: our side, not theirs
            await client.chat.completions.create(
                model="support", messages=[{"role": "user", "content": "[[fault:400]]"}], stream=True
            )
        assert upstream.value.status_code == 502 and upstream.value.code == "upstream_error"
        assert "simulator" not in upstream.value.message  # Dify's own text stays in the log
        with pytest.raises(openai.RateLimitError) as quota:
            await client.chat.completions.create(
                model="support", messages=[{"role": "user", "content": "[[fault:429-quota]]"}]
            )
        assert quota.value.code == "insufficient_quota"
    headers = {"authorization": f"Bearer {stack.key}", "content-type": "application/json"}
    invalid = await stack.http.post(f"{stack.base_url}/chat/completions", content=b"{nope", headers=headers)
    assert invalid.status_code == 400
    assert set(invalid.json()["error"]) == {"message", "type", "param", "code"}
    no_key = await stack.http.get(f"{stack.base_url}/models")
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"


async def test_errors_after_the_stream_started(stack: Stack) -> None:
    async with stack.client() as client:
        for fault in ("error-midstream", "disconnect"):
            query = f"a fairly long question to cut in half [[fault:{fault}]]"
            stream = await client.chat.completions.create(
                model="support", messages=[{"role": "user", "content": query}], stream=True
            )
            received = []
            with pytest.raises(openai.APIError) as caught:
                async for chunk in stream:
                    received.append(chunk.choices[0].delta.content)
            assert received and received[0]  # some text went out before the error
            assert caught.value.code == "upstream_error"
    body = {
        "model": "support",
        "messages": [{"role": "user", "content": "q [[fault:error-midstream]]"}],
        "stream": True,
    }
    response = await stack.http.post(
        f"{stack.base_url}/chat/completions", json=body, headers={"authorization": f"Bearer {stack.key}"}
    )
    assert response.status_code == 200
    payloads = frames(response.text)
    assert payloads[-1] == "[DONE]" and json.loads(payloads[-2])["error"]["type"] == "server_error"


async def test_output_moderation_ends_with_content_filter(stack: Stack) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "say something bad [[fault:replace]]"}]
    async with stack.client() as client:
        blocking = await client.chat.completions.create(model="support", messages=messages)
        assert blocking.choices[0].message.content == "[simulator] this answer was moderated"
        assert blocking.choices[0].finish_reason == "content_filter"
        stream = await client.chat.completions.create(model="support", messages=messages, stream=True)
        chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert "moderated" not in "".join(c.choices[0].delta.content or "" for c in chunks)


async def test_a_client_disconnect_stops_the_dify_task(tmp_path: Path) -> None:
    slow = SimulatorConfig(first_token_latency=0, tokens_per_second=5)
    # The production transport (aiohttp) between the gateway and Dify.
    async with openai_stack(tmp_path, {"support": slow}, use_aiohttp=True) as stack, stack.client() as client:
        long = "please write a long answer " * 10
        stream = await client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": long}], user="bob", stream=True
        )
        async for chunk in stream:
            assert chunk.choices[0].delta.content
            break
        await stream.close()
        stops: list[dict[str, Any]] = []
        with anyio.fail_after(10):
            while not stops:
                await anyio.sleep(0.05)
                stops = (await stack.stats())["stops"]
        bodies = await stack.generation_bodies()
        stats = await stack.stats()
    assert stops[0]["user"] == bodies[0]["user"] and stops[0]["user"].endswith(":bob")
    # The task id and user match: real Dify, which keeps generating after a disconnect, stops.
    assert stops[0]["matched"] is True and len(stops) == 1
    assert stats["streams_completed"] == 0


async def test_a_client_leaving_a_non_streaming_request_stops_the_dify_task(tmp_path: Path) -> None:
    slow = SimulatorConfig(first_token_latency=0, tokens_per_second=5, answer="one two three four five six seven")
    async with openai_stack(tmp_path, {"support": slow}, use_aiohttp=True) as stack:
        async with stack.client(timeout=0.5) as client:
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(model="support", messages=HI, user="bob")
        await anyio.sleep(1.0)
        stops = (await stack.stats())["stops"]
    assert stops and stops[0]["user"].endswith(":bob")


async def test_key_limits_answer_429_with_retry_after(tmp_path: Path) -> None:
    async with (
        openai_stack(tmp_path, settings={"key_requests_per_minute": 2}) as stack,
        stack.client() as client,
    ):
        for _ in range(2):
            await client.chat.completions.create(model="support", messages=HI)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="support", messages=HI)
    assert caught.value.code == "rate_limit_exceeded"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60


async def test_stream_of_unknown_history_with_images(stack: Stack) -> None:
    content: list[ChatCompletionContentPartParam] = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
    ]
    async with stack.client() as client:
        answer = await client.chat.completions.create(
            model="support",
            messages=[
                {"role": "user", "content": "earlier"},
                {"role": "assistant", "content": "an answer this endpoint never gave"},
                {"role": "user", "content": content},
            ],
            temperature=0.2,
            max_tokens=10,
            tool_choice="auto",
        )
    # A history this endpoint never answered: its earlier turns reach Dify as a transcript.
    history = "<history> User: earlier Assistant: an answer this endpoint never gave </history>"
    assert answer.choices[0].message.content == f"You said: {history} what is this"
    body = (await stack.generation_bodies())[0]
    assert "conversation_id" not in body  # an unknown history starts a new conversation
    assert body["files"] == [{"type": "image", "transfer_method": "remote_url", "url": "https://x.test/a.png"}]


async def test_stream_uses_dify_usage_only(stack: Stack) -> None:
    async with stack.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="support", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in raw.parse()]
    assert raw.headers["x-conversation-id"].startswith("thr_")
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 17 + 2  # the simulator's count


async def test_retried_dify_failures_map_to_502_and_429(tmp_path: Path) -> None:
    async with openai_stack(tmp_path, {"support": FAST, "coder": FAST}) as stack, stack.client() as client:
        with pytest.raises(openai.InternalServerError) as server_error:
            await client.chat.completions.create(
                model="support", messages=[{"role": "user", "content": "[[fault:500]]"}]
            )
        assert server_error.value.status_code == 502 and server_error.value.type == "server_error"
        with pytest.raises(openai.RateLimitError) as busy:
            await client.chat.completions.create(
                model="coder", messages=[{"role": "user", "content": "[[fault:429]]"}], stream=True
            )
        assert busy.value.code == "rate_limit_exceeded" and busy.value.response.headers["retry-after"] == "1"
        assert len((await stack.stats("support"))["faults_injected"]) == 3  # the gateway retried first


async def test_a_history_that_extends_no_known_exchange_reaches_dify_as_context(tmp_path: Path) -> None:
    few_shot: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": "Capital of Italy?"},
    ]
    async with openai_stack(tmp_path) as stack, stack.client() as client:
        first = await client.chat.completions.create(model="support", messages=few_shot)
        answer = first.choices[0].message.content or ""
        # The next turn extends the exchange just answered: only the new message is sent.
        follow_up: list[ChatCompletionMessageParam] = [
            *few_shot,
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "And Spain?"},
        ]
        second = await client.chat.completions.create(model="support", messages=follow_up)
        # An edited turn: the history no longer matches what Dify holds, so it starts anew with it.
        edited: list[ChatCompletionMessageParam] = [*few_shot[:3], {"role": "user", "content": "Capital of Peru?"}]
        stream = await client.chat.completions.create(model="support", messages=edited, stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream])
        bodies = await stack.generation_bodies()
    history = "<history>\nUser: Capital of France?\nAssistant: Paris\n</history>"
    assert bodies[0]["query"] == f"Answer in one word.\n\n{history}\n\nCapital of Italy?"
    assert "conversation_id" not in bodies[0]
    assert bodies[1]["query"] == "And Spain?" and bodies[1]["conversation_id"]
    assert second.conversation_id == first.conversation_id  # type: ignore[attr-defined]
    assert bodies[2]["query"] == f"Answer in one word.\n\n{history}\n\nCapital of Peru?"
    assert "conversation_id" not in bodies[2]
    # The simulator echoes the query it got: the earlier turns reached it.
    assert "Capital of France? Assistant: Paris" in answer and "Capital of France?" in streamed
