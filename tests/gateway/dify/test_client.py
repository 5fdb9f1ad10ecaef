"""DifyClient against respx: modes, events, errors, retries, breaker, fallback, cancellation."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
import respx

from gateway.clock import FakeClock
from gateway.dify import (
    AnswerCutOff,
    AnswerTooLarge,
    AskRequest,
    ConversationNotFound,
    DifyClient,
    DifyStreamError,
    RetryPolicy,
    WorkflowFailed,
    make_http_client,
)
from gateway.exceptions import CircuitOpen, ConfigurationError, UpstreamError, UpstreamTimeout
from tests.gateway.dify.conftest import (
    BASE,
    CHAT,
    FLOW,
    PING,
    app,
    end,
    envelope,
    msg,
    sse_bytes,
    sse_response,
)

pytestmark = pytest.mark.anyio
ASK = AskRequest(user="slack:T1:U1", query="Hello 🌍")


def body_of(call: Any) -> dict[str, Any]:
    return json.loads(call.request.content)  # type: ignore[no-any-return]


# --- happy paths per mode ------------------------------------------------------------------------


async def test_chat_stream_deltas_ids_usage_and_request(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.post(BASE + "/chat-messages").mock(
        side_effect=lambda request: sse_response(
            PING, msg("Héllo"), msg(" wörld 🌍"), {"event": "tts_message", "audio": "AA", **CHAT}, end(), crlf=True
        )
    )
    shown = ""
    kinds = []
    async with client.stream(app(), ASK) as stream:
        async for delta in stream.deltas():
            kinds.append(delta.kind)
            if delta.kind == "text":
                shown += delta.text
    answer = stream.answer
    assert shown == answer.text == "Héllo wörld 🌍"
    assert kinds == ["ping", "text", "text"]
    assert (answer.conversation_id, answer.message_id, answer.task_id) == ("conv-1", "msg-1", "task-1")
    assert answer.usage is not None and answer.usage.total_tokens == 15
    assert answer.complete and answer.app == "support" and answer.mode == "chat"
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Bearer app-secret"
    assert body_of(route.calls.last) == {"inputs": {}, "user": "slack:T1:U1", "response_mode": "streaming",
                                         "query": "Hello 🌍"}  # fmt: skip


async def test_request_fields_are_forwarded(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("x"), end()))
    request = AskRequest(
        user="u", query="q", inputs={"name": "Ann"}, conversation_id="conv-9", auto_generate_name=False,
        files=[{"type": "image", "transfer_method": "remote_url", "url": "https://x/y.png"}], workflow_id="wf-2",
    )  # fmt: skip
    await client.ask(app("advanced-chat"), request)
    body = body_of(route.calls.last)
    assert body["conversation_id"] == "conv-9" and body["auto_generate_name"] is False
    assert body["inputs"] == {"name": "Ann"} and body["workflow_id"] == "wf-2"
    assert body["files"][0]["transfer_method"] == "remote_url"


@pytest.mark.parametrize("conversation_id", [None, ""])
async def test_conversation_id_is_omitted_when_empty(
    router: respx.MockRouter, client: DifyClient, conversation_id: str | None
) -> None:
    route = router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("x"), end()))
    await client.ask(app(), AskRequest(user="u", query="q", conversation_id=conversation_id))
    assert "conversation_id" not in body_of(route.calls.last)


async def test_completion_endpoint(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.post(BASE + "/completion-messages").mock(side_effect=lambda r: sse_response(msg("done"), end()))
    answer = await client.ask(app("completion"), AskRequest(user="u", query="legacy", inputs={"topic": "x"}))
    assert answer.text == "done"
    assert body_of(route.calls.last) == {"inputs": {"topic": "x"}, "user": "u", "response_mode": "streaming",
                                         "query": "legacy"}  # fmt: skip
    await client.ask(app("completion"), AskRequest(user="u", inputs={"query": "in inputs"}))
    assert "query" not in body_of(route.calls.last)


def workflow_events(*texts: str, outputs: dict[str, Any] | None = None, status: str = "succeeded") -> list[Any]:
    blocks: list[Any] = [
        {"event": "workflow_started", **FLOW, "data": {"id": "run-1", "workflow_id": "wf", "inputs": {}}},
        {"event": "node_started", **FLOW, "data": {"node_id": "llm", "node_type": "llm", "title": "Think"}},
    ]
    blocks += [{"event": "text_chunk", **FLOW, "data": {"text": text}} for text in texts]
    blocks.append({"event": "node_finished", **FLOW, "data": {"node_id": "llm", "status": "succeeded"}})
    blocks.append({"event": "workflow_finished", **FLOW, "data": {"id": "run-1", "status": status, "total_tokens": 42,
                                                                 "outputs": outputs, "error": None}})  # fmt: skip
    return blocks


async def test_workflow_text_chunks_outputs_and_usage(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.post(BASE + "/workflows/run").mock(
        side_effect=lambda r: sse_response(*workflow_events("Bon", "jour", outputs={"text": "Bonjour", "n": 1}))
    )
    deltas = []
    async with client.stream(app("workflow"), AskRequest(user="u", query="ignored", inputs={"q": "x"})) as stream:
        deltas = [d async for d in stream]
    assert [(d.kind, d.text) for d in deltas] == [("progress", "Think"), ("text", "Bon"), ("text", "jour")]
    answer = stream.answer
    assert answer.text == "Bonjour" and answer.outputs == {"text": "Bonjour", "n": 1}
    assert answer.workflow_run_id == "run-1" and answer.task_id == "task-1" and answer.conversation_id is None
    assert answer.usage is not None and answer.usage.total_tokens == 42 and answer.usage.prompt_tokens is None
    assert body_of(route.calls.last) == {"inputs": {"q": "x"}, "user": "u", "response_mode": "streaming"}


async def test_workflow_text_from_outputs(router: respx.MockRouter, client: DifyClient) -> None:
    router.post(BASE + "/workflows/run").mock(
        side_effect=lambda r: sse_response(*workflow_events(outputs={"result": "42"}))
    )
    assert (await client.ask(app("workflow"), AskRequest(user="u"))).text == "42"
    router.post(BASE + "/workflows/run").mock(
        side_effect=lambda r: sse_response(*workflow_events(outputs={"a": "1", "b": "2"}))
    )
    assert (await client.ask(app("workflow"), AskRequest(user="u"))).text == ""  # ambiguous: no guess


async def test_workflow_output_key_wins(router: respx.MockRouter, client: DifyClient) -> None:
    router.post(BASE + "/workflows/wf-7/run").mock(
        side_effect=lambda r: sse_response(*workflow_events("draft", outputs={"final": "draft answer", "x": "y"}))
    )
    stream = client.stream(app("workflow", output_key="final"), AskRequest(user="u", workflow_id="wf-7"))
    async with stream:
        deltas = [d async for d in stream.deltas()]
    assert stream.answer.text == "draft answer"
    assert deltas[-1].kind == "text" and deltas[-1].text == " answer"  # suffix of the streamed text
    router.post(BASE + "/workflows/run").mock(
        side_effect=lambda r: sse_response(*workflow_events("a", outputs={"final": 3}))
    )
    assert (await client.ask(app("workflow", output_key="final"), AskRequest(user="u"))).text == "a"


async def test_workflow_failed_after_failed_node(router: respx.MockRouter, client: DifyClient) -> None:
    blocks = workflow_events("partial", status="failed")
    blocks.insert(-1, {"event": "node_finished", **FLOW, "data": {"status": "failed", "error": "tool crashed"}})
    route = router.post(BASE + "/workflows/run").mock(side_effect=lambda r: sse_response(*blocks))
    with pytest.raises(WorkflowFailed) as caught:
        await client.ask(app("workflow"), AskRequest(user="u"))
    assert "tool crashed" in caught.value.message and caught.value.upstream_code == "workflow_failed"
    assert caught.value.partial is not None and caught.value.partial.text == "partial"
    assert route.call_count == 1


async def test_failed_node_is_informational_when_run_succeeds(router: respx.MockRouter, client: DifyClient) -> None:
    blocks = workflow_events("ok")
    blocks.insert(2, {"event": "node_finished", **FLOW, "data": {"status": "failed", "error": "retried branch"}})
    router.post(BASE + "/workflows/run").mock(side_effect=lambda r: sse_response(*blocks))
    assert (await client.ask(app("workflow"), AskRequest(user="u"))).text == "ok"


async def test_advanced_chat_reads_through_workflow_finished(router: respx.MockRouter, client: DifyClient) -> None:
    blocks = [
        {"event": "workflow_started", **FLOW, "data": {"id": "run-1"}},
        {"event": "reasoning_chunk", **FLOW, "data": {"reasoning": "thinking…", "is_final": True}},
        {"event": "reasoning_chunk", **FLOW, "data": {"reasoning": ""}},
        msg("Answer"),
        {"event": "iteration_started", **FLOW, "data": {}},
        end(),
        {"event": "workflow_finished", **FLOW, "data": {"status": "succeeded", "outputs": {}, "total_tokens": 99}},
        msg(" ignored: nothing is read after the final terminator"),
    ]
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(*blocks))
    async with client.stream(app("advanced-chat"), ASK) as stream:
        kinds = [d.kind async for d in stream.deltas()]
    answer = stream.answer
    assert kinds == ["reasoning", "text"]
    assert answer.text == "Answer" and answer.reasoning == "thinking…"
    assert answer.usage is not None and answer.usage.total_tokens == 15  # message_end usage wins
    assert answer.workflow_run_id == "run-1" and answer.outputs == {}


async def test_agent_chat_thoughts_files_and_events(router: respx.MockRouter, client: DifyClient) -> None:
    thought = {"event": "agent_thought", "id": "th-1", "position": 1, "thought": "", "tool": "search",
               "tool_input": '{"q": "x"}', "observation": "", **CHAT}  # fmt: skip
    blocks = [
        thought,
        {**thought, "observation": "found it"},
        msg("Result", event="agent_message"),
        {"event": "message_file", "id": "f1", "type": "image", "belongs_to": "assistant", "url": "https://f/1.png"},
        end(),
    ]
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(*blocks))
    async with client.stream(app("agent-chat"), ASK) as stream:
        events = [e async for e in stream.events()]
    assert [type(e).__name__ for e in events][:2] == ["AgentThoughtEvent", "AgentThoughtEvent"]
    answer = stream.answer
    assert answer.text == "Result"
    assert len(answer.thoughts) == 1 and answer.thoughts[0].observation == "found it"  # updated in place
    assert answer.files[0].url == "https://f/1.png"


@pytest.mark.parametrize(
    ("closing", "expected_deltas", "text"),
    [
        ("Hello there", [("text", "Hello"), ("text", " there")], "Hello there"),  # equal: not appended twice
        ("Hello there!", [("text", "Hello"), ("text", " there"), ("text", "!")], "Hello there!"),
        ("Bonjour", [("text", "Hello"), ("text", " there"), ("replace", "Bonjour")], "Bonjour"),
    ],
)
async def test_new_agent_closing_message_is_final_text(
    router: respx.MockRouter, client: DifyClient, closing: str, expected_deltas: list[Any], text: str
) -> None:
    blocks = [msg("Hello", event="agent_message"), msg(" there", event="agent_message"), msg(closing), end()]
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(*blocks))
    async with client.stream(app("agent"), ASK) as stream:
        deltas = [(d.kind, d.text) async for d in stream.deltas()]
    assert deltas == expected_deltas and stream.answer.text == text


async def test_message_replace(router: respx.MockRouter, client: DifyClient) -> None:
    blocks = [msg("bad "), msg("words"), {"event": "message_replace", "answer": "[moderated]", "reason": "policy",
                                         **CHAT}, end()]  # fmt: skip
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(*blocks))
    async with client.stream(app(), ASK) as stream:
        deltas = [(d.kind, d.text) async for d in stream.deltas()]
    assert deltas[-1] == ("replace", "[moderated]")
    answer = stream.answer
    assert answer.text == "[moderated]" and answer.replaced and answer.replace_reason == "policy"


async def test_human_input_pause_is_a_terminator(router: respx.MockRouter, client: DifyClient) -> None:
    blocks: list[Any] = [
        {"event": "workflow_started", **FLOW, "data": {"id": "run-1"}},
        {"event": "human_input_required", **FLOW, "data": {"form_token": "tok", "form_content": "Approve?"}},
        {"event": "workflow_paused", **FLOW, "data": {"paused_nodes": ["n"]}},
    ]
    router.post(BASE + "/workflows/run").mock(side_effect=lambda r: sse_response(*blocks))
    answer = await client.ask(app("workflow"), AskRequest(user="u"))
    assert answer.paused and answer.complete
    assert answer.human_input is not None and answer.human_input.form_token == "tok"


async def test_unknown_and_malformed_events_are_skipped(
    router: respx.MockRouter, client: DifyClient, caplog: pytest.LogCaptureFixture
) -> None:
    blocks: list[Any] = ["data: {broken\n\n", {"event": "from_the_future", **CHAT}, ": comment\n\n", msg("ok"), end()]
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(*blocks))
    assert (await client.ask(app(), ASK)).text == "ok"
    assert "malformed Dify event" in caplog.text


async def test_info_and_parameters(router: respx.MockRouter, client: DifyClient) -> None:
    router.get(BASE + "/info").mock(
        return_value=httpx.Response(
            200, json={"name": "Bot", "description": "d", "tags": ["a"], "mode": "agent-chat", "author_name": "me"}
        )  # fmt: skip
    )
    info = await client.info(app())
    assert (info.name, info.mode, info.tags) == ("Bot", "agent-chat", ("a",))
    router.get(BASE + "/info").mock(return_value=httpx.Response(200, json={"tags": None}))
    assert (await client.info(app())).tags == ()
    router.get(BASE + "/parameters").mock(return_value=httpx.Response(200, json={"user_input_form": []}))
    assert await client.parameters(app()) == {"user_input_form": []}
    router.get(BASE + "/parameters").mock(return_value=httpx.Response(200, json=[1]))
    with pytest.raises(UpstreamError, match="non-object JSON"):
        await client.parameters(app())
    router.get(BASE + "/parameters").mock(return_value=httpx.Response(200, text="<html>"))
    with pytest.raises(UpstreamError, match="non-object JSON"):
        await client.parameters(app())
    # A body nested past Python's recursion limit is Dify's fault (an UpstreamError), not a crash.
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    router.get(BASE + "/parameters").mock(return_value=httpx.Response(200, text=deep))
    with pytest.raises(UpstreamError, match="non-object JSON"):
        await client.parameters(app())


async def test_info_401_is_not_retried(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.get(BASE + "/info").mock(return_value=envelope(401, "unauthorized", "Access token is invalid"))
    with pytest.raises(UpstreamError) as caught:
        await client.info(app())
    error = caught.value
    assert "the app API key was rejected" in error.message and "app-secret" not in error.message
    assert (error.upstream_status, error.upstream_code, error.retryable) == (401, "unauthorized", False)
    assert route.call_count == 1


async def test_info_deadline(router: respx.MockRouter, make_client: Any) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return httpx.Response(200, json={})  # pragma: no cover

    router.get(BASE + "/info").mock(side_effect=slow)
    with pytest.raises(UpstreamTimeout, match="within 0.05 s"):
        await make_client(deadline=0.05).info(app())


# --- errors and retries ---------------------------------------------------------------------------


async def test_429_too_many_requests_is_retried(router: respx.MockRouter, client: DifyClient, clock: FakeClock) -> None:
    route = router.post(BASE + "/chat-messages").mock(
        side_effect=[
            envelope(429, "too_many_requests"),
            envelope(429, "too_many_requests"),
            sse_response(msg("finally"), end()),
        ]  # fmt: skip
    )
    before = clock.monotonic()
    assert (await client.ask(app(), ASK)).text == "finally"
    assert route.call_count == 3
    assert 0 < clock.monotonic() - before <= 0.5 + 1.0  # two full-jitter backoffs, on the fake clock


async def test_429_rate_limit_error_is_not_retried(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.post(BASE + "/chat-messages").mock(return_value=envelope(429, "rate_limit_error", "quota used up"))
    with pytest.raises(UpstreamError) as caught:
        await client.ask(app(), ASK)
    assert route.call_count == 1
    assert not caught.value.retryable and "quota" in caught.value.message


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retried_until_attempts_run_out(router: respx.MockRouter, client: DifyClient, status: int) -> None:
    route = router.post(BASE + "/chat-messages").mock(
        return_value=httpx.Response(status, text="<html>Bad Gateway</html>")
    )
    with pytest.raises(UpstreamError) as caught:
        await client.ask(app(), ASK)
    assert route.call_count == 3
    assert caught.value.retryable and caught.value.upstream_status == status


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "app_unavailable"), (400, "provider_quota_exceeded"), (400, "invalid_param"), (403, "forbidden"),
     (413, "file_too_large"), (401, "unauthorized"), (404, "not_found")],
)  # fmt: skip
async def test_4xx_is_not_retried(router: respx.MockRouter, client: DifyClient, status: int, code: str) -> None:
    route = router.post(BASE + "/chat-messages").mock(return_value=envelope(status, code, "nope"))
    with pytest.raises(UpstreamError) as caught:
        await client.ask(app(), ASK)
    assert route.call_count == 1
    assert (caught.value.upstream_status, caught.value.upstream_code, caught.value.retryable) == (status, code, False)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [(httpx.ConnectError("refused"), UpstreamError), (httpx.ConnectTimeout("slow"), UpstreamTimeout),
     (httpx.ReadTimeout("silent"), UpstreamTimeout),
     (httpx.WriteTimeout("w"), UpstreamTimeout), (httpx.RemoteProtocolError("x"), UpstreamError)],
)  # fmt: skip
async def test_network_errors_before_first_event_are_retried(
    router: respx.MockRouter, client: DifyClient, exc: Exception, kind: type[UpstreamError]
) -> None:
    route = router.post(BASE + "/chat-messages").mock(side_effect=[exc, sse_response(msg("back"), end())])
    assert (await client.ask(app(), ASK)).text == "back"
    assert route.call_count == 2
    route.mock(side_effect=exc)
    with pytest.raises(kind) as caught:
        await client.ask(app(), ASK)
    assert caught.value.retryable


async def test_stream_closed_before_any_event_is_retried(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.post(BASE + "/chat-messages").mock(side_effect=[sse_response(), sse_response(msg("ok"), end())])
    assert (await client.ask(app(), ASK)).text == "ok"
    assert route.call_count == 2


async def test_error_event_after_first_event_is_not_retried(
    router: respx.MockRouter, client: DifyClient, clock: FakeClock
) -> None:
    error = {"event": "error", "message_id": "msg-1", "status": 500, "code": "internal_server_error",
             "message": "model crashed"}  # fmt: skip
    route = router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("Half an"), error))
    with pytest.raises(DifyStreamError) as caught:
        await client.ask(app(), ASK)
    assert route.call_count == 1
    err = caught.value
    assert (err.upstream_status, err.upstream_code, err.retryable) == (500, "internal_server_error", False)
    assert err.partial is not None and err.partial.text == "Half an" and not err.partial.complete
    assert clock.monotonic() == 0  # no backoff happened


async def test_error_as_first_event_is_not_retried(router: respx.MockRouter, client: DifyClient) -> None:
    error = {"event": "error", "status": 400, "code": "provider_quota_exceeded", "message": "quota"}
    route = router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(error))
    with pytest.raises(DifyStreamError, match="quota"):
        await client.ask(app(), ASK)
    assert route.call_count == 1


async def test_unexpected_content_type(router: respx.MockRouter, client: DifyClient) -> None:
    router.post(BASE + "/chat-messages").mock(return_value=httpx.Response(200, json={"answer": "blocking?"}))
    with pytest.raises(UpstreamError, match="instead of an event stream"):
        await client.ask(app(), ASK)


async def test_oversized_line(router: respx.MockRouter, make_client: Any) -> None:
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response("data: " + "x" * 100))
    with pytest.raises(UpstreamError, match="oversized event"):
        await make_client(max_event_chars=50).ask(app(), ASK)


async def test_answer_too_large(router: respx.MockRouter, make_client: Any) -> None:
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("12345"), msg("67890!"), end()))
    with pytest.raises(AnswerTooLarge) as caught:
        await make_client(max_answer_chars=10).ask(app(), ASK)
    assert caught.value.partial is not None


# --- cut-offs, timeouts, cancellation -------------------------------------------------------------


@pytest.fixture
def stops(router: respx.MockRouter) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"result": "success"})

    router.post(path__regex=r".*/stop$").mock(side_effect=record)
    return seen


async def test_cut_off_stream(router: respx.MockRouter, client: DifyClient, stops: list[Any]) -> None:
    route = router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("Half"), 'data: {"ev'))
    with pytest.raises(AnswerCutOff) as caught:
        await client.ask(app(), ASK)
    assert route.call_count == 1
    assert "cut off" in caught.value.message and caught.value.partial is not None
    assert caught.value.partial.text == "Half"
    assert stops == [("/v1/chat-messages/task-1/stop", {"user": "slack:T1:U1"})]  # the task may still run


async def body_then(*blocks: Any, then: BaseException | None = None, sleep: float = 0) -> AsyncIterator[bytes]:
    yield sse_bytes(*blocks)
    if sleep:
        await anyio.sleep(sleep)
    if then is not None:
        raise then


def raw_response(content: AsyncIterator[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)


async def test_read_timeout_mid_stream(router: respx.MockRouter, client: DifyClient, stops: list[Any]) -> None:
    route = router.post(BASE + "/chat-messages").mock(
        side_effect=lambda r: raw_response(body_then(msg("Hi"), then=httpx.ReadTimeout("silent")))
    )
    with pytest.raises(UpstreamTimeout, match="sent no answer for 30 s") as caught:
        await client.ask(app(), ASK)
    assert not caught.value.retryable and route.call_count == 1
    assert stops == [("/v1/chat-messages/task-1/stop", {"user": "slack:T1:U1"})]


async def test_connection_broken_mid_stream(router: respx.MockRouter, client: DifyClient, stops: list[Any]) -> None:
    router.post(BASE + "/chat-messages").mock(
        side_effect=lambda r: raw_response(body_then(msg("Hi"), then=httpx.ReadError("reset")))
    )
    with pytest.raises(AnswerCutOff, match="connection broke"):
        await client.ask(app(), ASK)
    assert len(stops) == 1


async def test_overall_deadline(router: respx.MockRouter, make_client: Any, stops: list[Any]) -> None:
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: raw_response(body_then(msg("Hi"), sleep=10)))
    with anyio.fail_after(5):
        with pytest.raises(UpstreamTimeout, match="within 0.2 s"):
            await make_client(deadline=0.2).ask(app(), ASK)
    assert stops == [("/v1/chat-messages/task-1/stop", {"user": "slack:T1:U1"})]


async def test_deadline_before_first_event(router: respx.MockRouter, make_client: Any) -> None:
    calls = []

    async def never(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        await anyio.sleep(10)
        return httpx.Response(500)  # pragma: no cover

    router.post(BASE + "/chat-messages").mock(side_effect=never)
    with pytest.raises(UpstreamTimeout, match="within 0.1 s"):
        await make_client(deadline=0.1).ask(app(), ASK)
    assert len(calls) == 1  # the deadline is not retried


async def test_backoff_that_would_pass_the_deadline_is_not_taken(router: respx.MockRouter, make_client: Any) -> None:
    route = router.post(BASE + "/chat-messages").mock(return_value=envelope(500, "internal_server_error"))
    client = make_client(deadline=0.001, retry=RetryPolicy(max_attempts=5, base_delay=10, max_delay=10))
    with pytest.raises(UpstreamError):
        await client.ask(app(), ASK)
    assert route.call_count == 1


async def test_consumer_break_stops_the_task(router: respx.MockRouter, client: DifyClient, stops: list[Any]) -> None:
    router.post(BASE + "/completion-messages").mock(
        side_effect=lambda r: sse_response(msg("one"), msg(" two"), msg(" three"), end())
    )
    async with client.stream(app("completion"), ASK) as stream:
        async for delta in stream.deltas():
            assert delta.text == "one"
            break
    assert stream.task_id == "task-1" and stream.conversation_id == "conv-1"
    assert stream.answer.complete is False
    assert stops == [("/v1/completion-messages/task-1/stop", {"user": "slack:T1:U1"})]


async def test_cancellation_stops_the_task(router: respx.MockRouter, client: DifyClient, stops: list[Any]) -> None:
    router.post(BASE + "/workflows/run").mock(
        side_effect=lambda r: raw_response(body_then({"event": "workflow_started", **FLOW, "data": {}}, sleep=30))
    )
    got = []
    with anyio.move_on_after(0.2) as scope:
        async with client.stream(app("workflow"), AskRequest(user="discord:G:42")) as stream:
            async for event in stream.events():
                got.append(event)
    assert scope.cancelled_caught and len(got) == 1
    assert stops == [("/v1/workflows/tasks/task-1/stop", {"user": "discord:G:42"})]


async def test_finished_stream_is_not_stopped(router: respx.MockRouter, client: DifyClient, stops: list[Any]) -> None:
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("a"), end()))
    async with client.stream(app(), ASK) as stream:
        assert await stream.collect() == stream.answer
        assert [e async for e in stream.events()] == []  # exhausted
    assert stops == []


async def test_stop_failure_is_swallowed(
    router: respx.MockRouter, client: DifyClient, caplog: pytest.LogCaptureFixture
) -> None:
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("a"), msg("b"), end()))
    stop = router.post(BASE + "/chat-messages/task-1/stop").mock(side_effect=httpx.ConnectError("down"))
    caplog.set_level(logging.WARNING, logger="gateway.dify.stream")
    async with client.stream(app(), ASK) as stream:
        async for _ in stream.deltas():
            break  # leaving triggers stop, which fails: nothing raises out of the block
    assert stop.called  # the stop was tried...
    assert "stopping Dify task task-1 of app 'support' failed" in caplog.text  # ...and its failure logged
    assert stream.answer.text == "a" and stream.answer.complete is False  # the partial answer is kept


async def test_stop_endpoints(router: respx.MockRouter, client: DifyClient, stops: list[Any]) -> None:
    for mode in ("chat", "agent-chat", "agent", "advanced-chat", "completion", "workflow"):
        await client.stop(app(mode), "t9", "u9")
    assert [path for path, _ in stops] == ["/v1/chat-messages/t9/stop"] * 4 + [
        "/v1/completion-messages/t9/stop",
        "/v1/workflows/tasks/t9/stop",
    ]
    assert all(body == {"user": "u9"} for _, body in stops)


async def test_stop_errors(router: respx.MockRouter, client: DifyClient) -> None:
    router.post(BASE + "/chat-messages/t0/stop").mock(return_value=envelope(401, "unauthorized"))
    with pytest.raises(UpstreamError, match="rejected"):
        await client.stop(app(), "t0", "u")
    router.post(BASE + "/chat-messages/t1/stop").mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(UpstreamError, match="could not reach"):
        await client.stop(app(), "t1", "u")


async def test_answer_needs_an_open_stream(client: DifyClient) -> None:
    stream = client.stream(app(), ASK)
    with pytest.raises(RuntimeError, match="not open"):
        _ = stream.answer


# --- breaker, fallback, conversation reset --------------------------------------------------------


async def test_circuit_breaker_opens_and_half_opens(
    router: respx.MockRouter, make_client: Any, clock: FakeClock
) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=1), breaker_threshold=2, breaker_cool_down=30)
    route = router.post(BASE + "/chat-messages").mock(return_value=envelope(500, "internal_server_error"))
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await client.ask(app(), ASK)
    with pytest.raises(CircuitOpen) as caught:
        await client.ask(app(), ASK)
    assert caught.value.message == "the Dify app 'support' is failing; paused for 30 s after repeated errors"
    assert route.call_count == 2  # failed fast
    other = app(name="other")
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("fine"), end()))
    assert (await client.ask(other, ASK)).text == "fine"  # breakers are per app
    clock.advance(29.5)
    with pytest.raises(CircuitOpen, match="paused for 1 s"):
        await client.ask(app(), ASK)
    clock.advance(1)  # half-open: one probe goes through and closes the breaker
    assert (await client.ask(app(), ASK)).text == "fine"
    assert client.breakers.get("support", app().base_url).state == "closed"


async def test_half_open_probe_failure_reopens(router: respx.MockRouter, make_client: Any, clock: FakeClock) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=1), breaker_threshold=1, breaker_cool_down=10)
    route = router.post(BASE + "/chat-messages").mock(return_value=envelope(503, "x"))
    with pytest.raises(UpstreamError):
        await client.ask(app(), ASK)
    clock.advance(10)
    with pytest.raises(UpstreamError) as caught:
        await client.ask(app(), ASK)  # the probe
    assert not isinstance(caught.value, CircuitOpen)
    with pytest.raises(CircuitOpen):
        await client.ask(app(), ASK)
    assert route.call_count == 2


MID_STREAM_ERROR = {"event": "error", "status": 500, "code": "internal_server_error", "message": "x"}


@pytest.mark.parametrize(
    ("answer", "raised"),
    [(lambda r: envelope(429, "too_many_requests", "Too many concurrent requests"), UpstreamError),
     (lambda r: sse_response(msg("a"), MID_STREAM_ERROR), DifyStreamError),
     (lambda r: raw_response(body_then(msg("a"), then=httpx.ReadError("reset"))), AnswerCutOff),
     (lambda r: sse_response(msg("a")), AnswerCutOff),
     (lambda r: raw_response(body_then(msg("a"), then=httpx.ReadTimeout("silent"))), UpstreamTimeout)],
    ids=["429-too-many-concurrent", "error-event", "connection-reset", "no-terminator", "read-timeout"],
)  # fmt: skip
async def test_per_request_failures_never_open_the_breaker(
    router: respx.MockRouter, make_client: Any, stops: list[Any], answer: Any, raised: type[Exception]
) -> None:
    client = make_client(breaker_threshold=1)
    route = router.post(BASE + "/chat-messages").mock(side_effect=answer)
    for _ in range(3):
        with pytest.raises(raised) as caught:
            await client.ask(app(), ASK)
        assert not isinstance(caught.value, CircuitOpen)
    route.mock(side_effect=lambda r: sse_response(msg("healthy"), end()))
    assert (await client.ask(app(), ASK)).text == "healthy"


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("no SYN-ACK"), envelope(500, "internal_server_error"),
     httpx.Response(502, text="<html>bad gateway</html>")],
    ids=["connection-refused", "connect-timeout", "500-before-any-byte", "502-from-a-proxy"],
)  # fmt: skip
async def test_signs_of_an_app_that_is_down_open_the_breaker(
    router: respx.MockRouter, make_client: Any, failure: Any
) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=1), breaker_threshold=2)
    route = router.post(BASE + "/chat-messages").mock(side_effect=[failure, failure])
    for _ in range(2):
        with pytest.raises(UpstreamError) as caught:
            await client.ask(app(), ASK)
        assert not isinstance(caught.value, CircuitOpen)
    with pytest.raises(CircuitOpen):
        await client.ask(app(), ASK)
    assert route.call_count == 2


async def test_refused_connection_through_aiohttp_opens_the_breaker(clock: FakeClock) -> None:
    with socket.socket() as sock:  # a port nothing listens on: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = make_http_client(use_aiohttp=True, max_connections=4)
    try:
        client = DifyClient(http, clock=clock, retry=RetryPolicy(max_attempts=1), breaker_threshold=1)
        down = app(base_url=f"http://127.0.0.1:{port}/v1")
        with pytest.raises(UpstreamError, match="ClientConnectorError") as caught:
            await client.ask(down, ASK)
        assert caught.value.unreachable
        with pytest.raises(CircuitOpen):
            await client.ask(down, ASK)
    finally:
        await http.aclose()


async def test_half_open_lets_exactly_one_trial_through(
    router: respx.MockRouter, make_client: Any, clock: FakeClock, stops: list[Any]
) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=1), breaker_threshold=1, breaker_cool_down=10)
    route = router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("a"), msg("b"), end()))
    async with client.stream(app(), ASK) as early:  # in flight while the app goes down
        await anext(early.deltas())
        route.mock(side_effect=[envelope(503, "x"), sse_response(msg("trial"), end())])
        with pytest.raises(UpstreamError):
            await client.ask(app(), ASK)
        clock.advance(10)  # half-open
        async with client.stream(app(), ASK) as trial:
            await anext(trial.deltas())
            await early.__aexit__(None, None, None)  # the early call ends: no second trial because of it
            with pytest.raises(CircuitOpen):
                await client.ask(app(), ASK)
            await trial.collect()
    assert route.call_count == 3  # the early stream, the failure, the one trial
    assert client.breakers.get("support", app().base_url).state == "closed"


async def test_caller_errors_do_not_trip_the_breaker(router: respx.MockRouter, make_client: Any) -> None:
    client = make_client(breaker_threshold=1)
    router.post(BASE + "/chat-messages").mock(return_value=envelope(400, "invalid_param", "user is required"))
    for _ in range(3):
        with pytest.raises(UpstreamError, match="invalid_param"):
            await client.ask(app(), ASK)


async def test_fallback_app_when_primary_fails(router: respx.MockRouter, client: DifyClient) -> None:
    primary = router.post(BASE + "/chat-messages").mock(return_value=envelope(400, "app_unavailable"))
    backup = app(name="backup", base_url="https://backup.test/v1")
    fallback_route = router.post("https://backup.test/v1/chat-messages").mock(
        side_effect=lambda r: sse_response(msg("from backup", conversation_id="conv-b"), end())
    )
    request = AskRequest(user="u", query="q", conversation_id="conv-primary")
    answer = await client.ask(app(), request, fallback=backup)
    assert answer.app == "backup" and answer.text == "from backup" and answer.conversation_id == "conv-b"
    assert primary.call_count == 1
    assert "conversation_id" not in body_of(fallback_route.calls.last)  # ids are per app
    assert fallback_route.calls.last.request.headers["authorization"] == "Bearer app-secret"


async def test_fallback_when_circuit_open_and_both_failing(router: respx.MockRouter, make_client: Any) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=1), breaker_threshold=1)
    router.post(BASE + "/chat-messages").mock(return_value=envelope(500, "internal_server_error"))
    with pytest.raises(UpstreamError):
        await client.ask(app(), ASK)
    backup = app(name="backup", base_url="https://backup.test/v1")
    router.post("https://backup.test/v1/chat-messages").mock(return_value=envelope(401, "unauthorized"))
    with pytest.raises(UpstreamError, match="key was rejected") as caught:
        await client.ask(app(), ASK, fallback=backup)
    assert isinstance(caught.value.__cause__, CircuitOpen)
    backup2 = app(name="backup2", base_url="https://backup.test/v1")  # a healthy fallback
    router.post("https://backup.test/v1/chat-messages").mock(side_effect=lambda r: sse_response(msg("b"), end()))
    async with client.stream(app(), ASK, fallback=backup2) as stream:
        assert stream.app.name == "backup2"
        await stream.collect()


async def test_conversation_not_exists_retries_once_without_it(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.post(BASE + "/chat-messages").mock(
        side_effect=[envelope(404, "not_found", "Conversation Not Exists."),
                     sse_response(msg("fresh", conversation_id="conv-new"), end(conversation_id="conv-new"))]
    )  # fmt: skip
    answer = await client.ask(app(), AskRequest(user="u", query="q", conversation_id="conv-old"))
    assert answer.conversation_reset and answer.conversation_id == "conv-new" and answer.text == "fresh"
    assert body_of(route.calls[0])["conversation_id"] == "conv-old"
    assert "conversation_id" not in body_of(route.calls[1])


async def test_conversation_not_exists_without_retry(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.post(BASE + "/chat-messages").mock(
        return_value=envelope(404, "not_found", "Conversation Not Exists.")
    )
    request = AskRequest(user="u", query="q", conversation_id="conv-old")
    with pytest.raises(ConversationNotFound):
        await client.ask(app(), request, retry_without_conversation=False)
    with pytest.raises(ConversationNotFound):  # the retry happens once only
        await client.ask(app(), request, fallback=app(name="backup"))
    assert route.call_count == 3
    with pytest.raises(ConversationNotFound):  # and never without a conversation id to drop
        await client.ask(app(), AskRequest(user="u", query="q"))


# --- construction ---------------------------------------------------------------------------------


async def test_make_http_client_variants() -> None:
    for use_aiohttp in (True, False):
        http = make_http_client(use_aiohttp=use_aiohttp, max_connections=10)
        assert http.follow_redirects is False and http.timeout.read == 60.0
        await http.aclose()


def test_app_repr_hides_the_key_and_validates() -> None:
    assert "app-secret" not in repr(app()) and "app-secret" not in str(app())
    with pytest.raises(ConfigurationError):
        app("nonsense")  # type: ignore[arg-type]  # deliberately not a mode
    with pytest.raises(ConfigurationError):
        app(base_url="ftp://x")
    with pytest.raises(ConfigurationError):
        type(app())(name="x", base_url="https://x/v1", api_key="")
    with pytest.raises(ConfigurationError):
        AskRequest(user="")


async def test_info_network_error_is_retried(router: respx.MockRouter, client: DifyClient) -> None:
    route = router.get(BASE + "/info").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(UpstreamError, match="could not reach") as caught:
        await client.info(app())
    assert caught.value.retryable and route.call_count == 3


async def test_huge_error_body_is_capped_and_clipped(router: respx.MockRouter, client: DifyClient) -> None:
    router.post(BASE + "/chat-messages").mock(return_value=envelope(400, "invalid_param", "y" * 200_000))
    with pytest.raises(UpstreamError) as caught:
        await client.ask(app(), ASK)
    # the envelope was cut at 64 KiB, so it no longer parses; the message stays short either way
    assert caught.value.upstream_status == 400 and len(caught.value.message) < 400


async def test_stream_after_exit_is_inert(router: respx.MockRouter, client: DifyClient, stops: list[Any]) -> None:
    router.post(BASE + "/chat-messages").mock(side_effect=lambda r: sse_response(msg("a"), msg("b"), end()))
    stream = client.stream(app(), ASK)
    async with stream:
        pass
    assert [e async for e in stream.events()] == []
    await stream.__aexit__(None, None, None)  # a second exit does nothing
    assert len(stops) == 1  # abandoned right after the first event: stopped once


class _BrokenCloseStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield sse_bytes(msg("a"))

    async def aclose(self) -> None:
        raise RuntimeError("socket already gone")


async def test_close_failure_is_tolerated(router: respx.MockRouter, client: DifyClient, stops: list[Any]) -> None:
    router.post(BASE + "/chat-messages").mock(
        side_effect=lambda r: httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_BrokenCloseStream()
        )
    )
    async with client.stream(app(), ASK) as stream:
        async for _ in stream.deltas():
            break
    assert len(stops) == 1


async def test_aiohttp_connection_errors_are_not_reported_as_timeouts(client: DifyClient) -> None:
    # httpx-aiohttp raises ConnectTimeout for any aiohttp.ClientConnectionError (respx can't produce that chain).
    refused = httpx.ConnectTimeout("mapped by httpx-aiohttp")
    refused.__cause__ = aiohttp.ServerDisconnectedError()
    error = client.transport_error(app(), refused)
    assert type(error) is UpstreamError and error.retryable
    assert error.message == "could not reach Dify app 'support' (ServerDisconnectedError)"
    timed_out = httpx.ConnectTimeout("real")
    timed_out.__cause__ = aiohttp.ServerTimeoutError()
    assert isinstance(client.transport_error(app(), timed_out), UpstreamTimeout)
    assert isinstance(client.transport_error(app(), httpx.ConnectTimeout("httpcore")), UpstreamTimeout)
