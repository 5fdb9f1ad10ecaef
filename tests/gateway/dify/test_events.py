"""parse_event: every event of dify-api.md §4.2, unknown events, and malformed data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.dify import events as ev
from gateway.dify.sse import ServerSentEvent


def sse(payload: dict[str, Any] | str, event: str = "message") -> ServerSentEvent:
    return ServerSentEvent(event=event, data=payload if isinstance(payload, str) else json.dumps(payload))


CHAT = {"conversation_id": "c1", "message_id": "m1", "created_at": 1705395332, "task_id": "t1"}
FLOW = {"task_id": "t1", "workflow_run_id": "r1"}

CASES: list[tuple[dict[str, Any], type[Any], dict[str, Any]]] = [
    ({"event": "message", "id": "m1", "answer": " I", **CHAT}, ev.MessageEvent, {"answer": " I", "task_id": "t1"}),
    ({"event": "agent_message", "answer": "x", **CHAT}, ev.AgentMessageEvent, {"answer": "x"}),
    (
        {
            "event": "agent_thought",
            "id": "a",
            "position": 1,
            "thought": "t",
            "observation": "o",
            "tool": "calc",
            "tool_input": '{"calc": {"x": 1}}',
            "message_files": ["f1"],
            **CHAT,
        },
        ev.AgentThoughtEvent,
        {"tool": "calc", "position": 1, "message_files": ["f1"]},
    ),
    (
        {
            "event": "message_file",
            "id": "f",
            "type": "image",
            "belongs_to": "assistant",
            "url": "https://x/y.png",
            "conversation_id": "c1",
        },
        ev.MessageFileEvent,
        {"url": "https://x/y.png", "belongs_to": "assistant"},
    ),
    (
        {"event": "message_replace", "answer": "safe", "reason": "moderation", **CHAT},
        ev.MessageReplaceEvent,
        {"answer": "safe", "reason": "moderation"},
    ),
    (
        {
            "event": "message_end",
            "id": "m1",
            **CHAT,
            "files": None,
            "metadata": {
                "usage": {
                    "prompt_tokens": 3,
                    "completion_tokens": 4,
                    "total_tokens": 7,
                    "total_price": "0.0001",
                    "currency": "USD",
                    "latency": 0.5,
                },
                "retriever_resources": [{"position": 1}],
            },
        },
        ev.MessageEndEvent,
        {"id": "m1"},
    ),
    ({"event": "tts_message", "audio": "AAA=", **CHAT}, ev.TTSMessageEvent, {"audio": "AAA="}),
    ({"event": "tts_message_end", "audio": "", **CHAT}, ev.TTSMessageEndEvent, {}),
    (
        {
            "event": "reasoning_chunk",
            **FLOW,
            "data": {"message_id": "m1", "reasoning": "hmm", "node_id": "llm", "is_final": False},
        },
        ev.ReasoningChunkEvent,
        {},
    ),
    (
        {"event": "text_chunk", **FLOW, "data": {"text": "hé", "from_variable_selector": ["llm", "text"]}},
        ev.TextChunkEvent,
        {},
    ),
    (
        {"event": "workflow_started", **FLOW, "data": {"id": "r1", "workflow_id": "w", "inputs": {}, "created_at": 1}},
        ev.WorkflowStartedEvent,
        {"workflow_run_id": "r1"},
    ),
    (
        {
            "event": "node_started",
            **FLOW,
            "data": {"id": "n", "node_id": "llm", "node_type": "llm", "title": "LLM", "index": 1, "iteration_id": None},
        },
        ev.NodeStartedEvent,
        {},
    ),
    (
        {
            "event": "node_finished",
            **FLOW,
            "data": {
                "node_id": "llm",
                "status": "failed",
                "error": "boom",
                "elapsed_time": 0.1,
                "outputs_truncated": False,
            },
        },
        ev.NodeFinishedEvent,
        {},
    ),
    ({"event": "node_retry", **FLOW, "data": {"retry_index": 1}}, ev.NodeRetryEvent, {}),
    ({"event": "iteration_started", **FLOW, "data": {}}, ev.IterationEvent, {"event": "iteration_started"}),
    ({"event": "iteration_next", **FLOW, "data": {}}, ev.IterationEvent, {"event": "iteration_next"}),
    ({"event": "iteration_completed", **FLOW, "data": {}}, ev.IterationEvent, {"event": "iteration_completed"}),
    ({"event": "loop_started", **FLOW, "data": {}}, ev.LoopEvent, {"event": "loop_started"}),
    ({"event": "loop_next", **FLOW, "data": {}}, ev.LoopEvent, {"event": "loop_next"}),
    ({"event": "loop_completed", **FLOW, "data": {}}, ev.LoopEvent, {"event": "loop_completed"}),
    ({"event": "agent_log", **FLOW, "data": {"label": "x"}}, ev.AgentLogEvent, {}),
    (
        {
            "event": "workflow_finished",
            **FLOW,
            "data": {
                "id": "r1",
                "workflow_id": "w",
                "status": "succeeded",
                "outputs": {"text": "hi"},
                "error": None,
                "elapsed_time": 1.2,
                "total_tokens": 9,
                "total_steps": 3,
                "created_at": 1,
                "finished_at": 2,
                "files": [],
                "exceptions_count": 0,
            },
        },
        ev.WorkflowFinishedEvent,
        {},
    ),
    (
        {"event": "human_input_required", **FLOW, "form_token": "ft", "form_content": "Fill", "expiration_time": 9},
        ev.HumanInputRequiredEvent,
        {"form_token": "ft", "expiration_time": 9},
    ),
    (
        {"event": "human_input_required", **FLOW, "data": {"form_token": "nested", "form_content": {"a": 1}}},
        ev.HumanInputRequiredEvent,
        {"form_token": "nested"},
    ),
    (
        {"event": "workflow_paused", **FLOW, "data": {"paused_nodes": ["n1"], "reasons": [{"type": "human"}]}},
        ev.WorkflowPausedEvent,
        {"paused_nodes": ["n1"]},
    ),
    ({"event": "human_input_form_filled", **FLOW, "data": {"x": 1}}, ev.HumanInputFormFilledEvent, {}),
    ({"event": "human_input_form_timeout", **FLOW}, ev.HumanInputFormTimeoutEvent, {}),
    (
        {"event": "error", "message_id": "m1", "status": 400, "code": "invalid_param", "message": "bad"},
        ev.ErrorEvent,
        {"status": 400, "code": "invalid_param", "task_id": None},
    ),
]


@pytest.mark.parametrize(("payload", "model", "fields"), CASES, ids=[c[0]["event"] for c in CASES])
def test_every_event_type(payload: dict[str, Any], model: type[Any], fields: dict[str, Any]) -> None:
    parsed = ev.parse_event(sse(payload))
    assert type(parsed) is model
    assert parsed.event == payload["event"]
    for name, value in fields.items():
        assert getattr(parsed, name) == value


def test_nested_payloads_are_typed() -> None:
    end = ev.parse_event(sse(CASES[5][0]))
    assert isinstance(end, ev.MessageEndEvent)
    assert end.metadata.usage == ev.Usage(
        prompt_tokens=3, completion_tokens=4, total_tokens=7, total_price="0.0001", currency="USD", latency=0.5
    )
    chunk = ev.parse_event(sse({"event": "text_chunk", "data": {"text": "hé"}}))
    assert isinstance(chunk, ev.TextChunkEvent) and chunk.data.text == "hé"


def test_every_table_event_is_known() -> None:
    names = {
        "message", "agent_message", "agent_thought", "message_file", "message_replace", "message_end",
        "tts_message", "tts_message_end", "reasoning_chunk", "text_chunk", "workflow_started", "node_started",
        "node_finished", "node_retry", "iteration_started", "iteration_next", "iteration_completed",
        "loop_started", "loop_next", "loop_completed", "agent_log", "workflow_finished", "human_input_required",
        "workflow_paused", "human_input_form_filled", "human_input_form_timeout", "error",
    }  # fmt: skip
    assert set(ev._BY_NAME) == names


def test_ping() -> None:
    assert ev.parse_event(ServerSentEvent(event="ping")) == ev.PingEvent()
    assert ev.parse_event(sse({"event": "ping"})) == ev.PingEvent()


def test_data_less_non_ping_block_is_unknown() -> None:
    assert ev.parse_event(ServerSentEvent(event="heartbeat")) == ev.UnknownEvent(event="heartbeat")


def test_unknown_event_keeps_raw_payload() -> None:
    parsed = ev.parse_event(sse({"event": "brand_new", "x": 1}))
    assert parsed == ev.UnknownEvent(event="brand_new", raw={"event": "brand_new", "x": 1})


def test_object_without_event_name_is_unknown() -> None:
    assert ev.parse_event(sse({"answer": "x"})) == ev.UnknownEvent(event="message", raw={"answer": "x"})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("{not json", "data is not valid JSON"),
        ('{"event": "message", "answer": ' + "[" * 5000 + "]" * 5000 + "}", "data is not valid JSON"),  # recursion
        ("[1, 2]", "data is not a JSON object"),
        ('"text"', "data is not a JSON object"),
        ('{"event": "message", "answer": 5}', "answer: Input should be a valid string"),
        ('{"event": "workflow_finished", "data": {"total_tokens": "many"}}', "data.total_tokens:"),
    ],
)
def test_malformed_never_raises(data: str, reason: str) -> None:
    parsed = ev.parse_event(ServerSentEvent(data=data))
    assert isinstance(parsed, ev.MalformedEvent)
    assert parsed.reason.startswith(reason)
    assert parsed.data == data[:200]


def test_malformed_data_is_truncated() -> None:
    parsed = ev.parse_event(ServerSentEvent(data="x" * 1000))
    assert isinstance(parsed, ev.MalformedEvent) and len(parsed.data) == 200


def test_extra_fields_are_ignored_and_models_frozen() -> None:
    parsed = ev.parse_event(sse({"event": "message", "answer": "a", "brand_new_field": [1]}))
    assert isinstance(parsed, ev.MessageEvent)
    with pytest.raises(ValueError):
        parsed.answer = "b"  # type: ignore[misc]


# --- one pass: the same events, cheaper --------------------------------------------------------

# Inputs where a JSON parser may differ from `json.loads` (duplicate keys, lone surrogates,
# non-finite and huge numbers, whitespace, BOM-less oddities) and fields of the wrong type.
EDGES = [
    '{"event": "message", "event": "brand_new", "answer": "a"}',
    '{"event": "brand_new", "event": "message", "answer": "a"}',
    '{"event": "message", "answer": "a", "answer": "b"}',
    '{"event": "message", "answer": "\\ud800 lone"}',
    '{"event": "message", "answer": "\\udc00\\ud800"}',
    '{"event": "message_end", "metadata": {"usage": {"latency": NaN}}}',
    '{"event": "message_end", "metadata": {"usage": {"latency": Infinity}}}',
    '{"event": "message_end", "metadata": {"usage": {"latency": 1e400}}}',
    '{"event": "message_end", "metadata": {"usage": {"total_tokens": 123456789012345678901234567890}}}',
    '{"event": "message_end", "metadata": {"usage": {"total_tokens": "12"}}}',
    '{"event": "message_end", "metadata": {"usage": {"total_tokens": 12.0}}}',
    '{"event": "message_end", "metadata": {"usage": {"total_tokens": 12.5}}}',
    '{"event": "message", "created_at": true}',
    '{"event": "message", "answer": null}',
    '  \n{"event": "message", "answer": "padded"}\t ',
    '{"event": "message", "answer": "a"} trailing',
    '{"event": "ping"}',
    '{"event": "workflow_paused", "data": {"reason": "r"}}',
    '{"event": "human_input_required", "data": "not an object"}',
    '{"event": "message", "answer": ' + "[" * 70 + "]" * 70 + "}",
    '{"event": "message", "extra": ' + "[" * 70 + "]" * 70 + "}",
    '{"event": "message", "answer": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
]


@pytest.mark.parametrize("data", [json.dumps(case[0]) for case in CASES] + EDGES)
def test_one_pass_gives_what_the_long_way_gives(data: str) -> None:
    block = ServerSentEvent(event="message", data=data)
    fast, slow = ev.parse_event(block), ev._parse_checked(block)
    assert (type(fast), repr(fast)) == (type(slow), repr(slow))  # repr: NaN is not equal to itself


def test_a_valid_known_event_is_parsed_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dict(data: Any, **kwargs: Any) -> Any:
        raise AssertionError("the event was decoded into a dict first")

    monkeypatch.setattr(ev, "bounded_loads", no_dict)
    for payload, model, _ in CASES:
        assert isinstance(ev.parse_event(sse(payload)), model)
