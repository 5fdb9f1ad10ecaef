"""`endpoints.openai.translate`: the pure OpenAI <-> Dify mapping, every branch."""

from __future__ import annotations

import json
from types import SimpleNamespace as NS
from typing import Any

import pytest

from endpoints.openai.errors import OpenAIError
from endpoints.openai.files import Attachment
from endpoints.openai.threads import Thread, conversation_args
from endpoints.openai.translate import (
    DONE,
    PING,
    ChatRequest,
    ChunkWriter,
    DifyCall,
    Message,
    answer_reasoning,
    answer_text,
    broadcast_section,
    completion_body,
    file_markdown,
    history_key,
    model_entry,
    parse_chat_request,
    plan_call,
    sse,
    sum_usage,
    transcript,
    usage_dict,
)
from gateway.dify.events import (
    AgentThoughtEvent,
    MessageEvent,
    MessageFileEvent,
    MessageReplaceEvent,
    WorkflowFinishedEvent,
)
from gateway.plugin import Delta

USER = {"role": "user", "content": "hi"}


def image(url: str) -> Attachment:
    return Attachment.of(url, "image", "messages[0].content[0].image_url")


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "support", "messages": [USER], **fields}


def rejected(payload: Any) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        parse_chat_request(payload)
    assert caught.value.status == 400 and caught.value.type == "invalid_request_error"
    return caught.value


# -- requests ---------------------------------------------------------------------------------------


def test_a_minimal_request_and_its_defaults() -> None:
    request = parse_chat_request(body(temperature=0.3, max_tokens=5, seed=1, tools=[{}], n=1, future_field=True))
    assert request == ChatRequest("support", (Message("user", "hi"),))
    assert request.prior == () and not request.continues


def test_all_extensions_and_options() -> None:
    thread = "thr_" + "a" * 24
    request = parse_chat_request(
        body(
            stream=True,
            stream_options={"include_usage": True},
            user="alice",
            conversation_id=thread,
            inputs={"lang": "fr"},
            tool_choice="none",
            logprobs=False,
        )
    )
    assert (request.stream, request.include_usage, request.user) == (True, True, "alice")
    assert request.conversation_id == thread and request.inputs == {"lang": "fr"}
    # include_usage means nothing without streaming; an empty user is no user.
    assert not parse_chat_request(body(stream_options={"include_usage": True}, user="")).include_usage
    assert parse_chat_request(body(user="")).user is None


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ([], None),
        ({"model": "", "messages": [USER]}, "model"),
        ({"model": 3, "messages": [USER]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]"),
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages[0].content[0]"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages[0].content[0]",
        ),
        ({"model": "m", "messages": [USER, {"role": "assistant", "content": "a"}]}, "messages"),
        (body(n=2), "n"),
        (body(n=True), "n"),
        (body(logprobs=True), "logprobs"),
        (body(tool_choice="required"), "tool_choice"),
        (body(tool_choice={"type": "function", "function": {"name": "f"}}), "tool_choice"),
        (body(stream="yes"), "stream"),
        (body(stream=1), "stream"),
        (body(stream_options=True), "stream_options"),
        (body(stream=True, stream_options={"include_usage": "yes"}), "include_usage"),
        (body(user=5), "user"),
        (body(user="u" * 257), "user"),
        (body(conversation_id="a-dify-id"), "conversation_id"),
        (body(inputs=[1]), "inputs"),
        (body(user="\ud800"), None),
    ],
)
def test_bad_requests_name_the_field(payload: Any, param: str | None) -> None:
    assert rejected(payload).param == param


def test_content_parts_and_images() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
    legacy = {"type": "image_url", "image_url": "http://x.test/b.png"}
    parts = [{"type": "text", "text": "look"}, image, {"type": "text", "text": "here"}, legacy]
    messages = [{"role": "assistant", "content": None}, {"role": "user", "content": parts}]
    request = parse_chat_request({"model": "m", "messages": messages})
    assert [(m.role, m.text) for m in request.messages] == [("assistant", ""), ("user", "look\nhere")]
    assert [(f.url, f.kind) for f in request.messages[1].files] == [
        ("https://x.test/a.png", "image"),
        ("http://x.test/b.png", "image"),
    ]


@pytest.mark.parametrize(
    ("image_url", "message"),
    [
        ({"url": "data:image/png;base64AAAA"}, "needs a comma"),
        ({"url": "ftp://x.test/a.png"}, "http(s)"),
        ({"url": "https://"}, "http(s)"),
        ({"url": "https://[::1/x.png"}, "http(s)"),  # urlsplit raises ValueError: was a 500
        ({}, "needs a url"),
    ],
)
def test_unusable_image_urls(image_url: Any, message: str) -> None:
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": image_url}]}]
    error = rejected({"model": "m", "messages": messages})
    assert message in error.message and error.param == "messages[0].content[0].image_url"


def test_plan_for_chat_apps() -> None:
    messages = (
        Message("system", "Be brief."),
        Message("developer", ""),
        Message("user", "hi", (image("https://i/1"),)),
    )
    request = ChatRequest("m", messages, inputs={"lang": "fr"})
    first = plan_call(request, first_turn=True, system_input=None)
    assert first.query == "Be brief.\n\nhi" and first.inputs == {"lang": "fr"}
    assert first.attachments == (image("https://i/1"),) and first.files == []  # resolved by files.dify_files
    later = plan_call(request, first_turn=False, system_input=None)
    assert later.query == "hi"
    as_input = plan_call(request, first_turn=False, system_input="persona")
    assert as_input.query == "hi" and as_input.inputs == {"lang": "fr", "persona": "Be brief."}
    plain = plan_call(ChatRequest("m", (Message("user", "yo"),)), first_turn=True, system_input=None)
    assert (plain.query, plain.inputs, plain.files) == ("yo", {}, [])


def test_earlier_turns_go_ahead_of_the_first_turn_as_a_transcript() -> None:
    messages = (
        Message("system", "Be brief."),
        Message("user", "What is 2+2?"),
        Message("assistant", "4"),
        Message("user", "Look", (image("https://i/1"),)),
        Message("tool", ""),
        Message("user", "and 3+3?"),
    )
    history = "<history>\nUser: What is 2+2?\nAssistant: 4\nUser: Look [image: https://i/1]\n</history>"
    first = plan_call(ChatRequest("m", messages), first_turn=True, system_input=None)
    assert first.query == f"Be brief.\n\n{history}\n\nand 3+3?"
    as_input = plan_call(ChatRequest("m", messages), first_turn=True, system_input="persona")
    assert as_input.query == f"{history}\n\nand 3+3?" and as_input.inputs == {"persona": "Be brief."}
    # A continued conversation already holds them.
    assert plan_call(ChatRequest("m", messages), first_turn=False, system_input=None).query == "and 3+3?"
    assert transcript([Message("system", "x"), Message("tool", "")]) == ""


def test_history_key_is_scoped_and_tolerates_trimmed_answers() -> None:
    history = [Message("user", "one"), Message("assistant", "You said: one\n")]
    key = history_key("key_1", "alice", "support", history)
    assert key == history_key(
        "key_1", "alice", "support", [Message("user", "one"), Message("assistant", "You said: one")]
    )
    assert (
        len(
            {
                key,
                *(
                    history_key(*args, history)
                    for args in [
                        ("key_2", "alice", "support"),
                        ("key_1", "bob", "support"),
                        ("key_1", "alice", "coder"),
                    ]
                ),
            }
        )
        == 4
    )
    assert key != history_key("key_1", "alice", "support", [Message("user", "one", (image("https://i"),)), history[1]])
    request = ChatRequest("m", (*history, Message("user", "two")))
    assert request.prior == tuple(history) and request.continues


# -- responses --------------------------------------------------------------------------------------


def test_usage_is_never_invented() -> None:
    full = NS(prompt_tokens=3, completion_tokens=4, total_tokens=7, latency=0.1)
    assert usage_dict(full) == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert usage_dict(NS(prompt_tokens=None, completion_tokens=None, total_tokens=9)) is None
    assert usage_dict(None) is None
    assert sum_usage([usage_dict(full), usage_dict(full)]) == {
        "prompt_tokens": 6,
        "completion_tokens": 8,
        "total_tokens": 14,
    }
    assert sum_usage([usage_dict(full), None]) is None
    assert sum_usage([]) is None


def test_answers_files_and_reasoning() -> None:
    files = (
        NS(url="https://f/1.png", type="image"),
        NS(url="https://f/2.pdf", type="document"),
        NS(url="javascript:x", type="image"),
    )
    answer = NS(text="streamed", outputs={"summary": "final", "n": 1}, files=(), reasoning="", thoughts=())
    assert answer_text(answer) == "streamed"
    assert answer_text(answer, output_key="summary") == "final"
    assert answer_text(answer, output_key="n") == answer_text(answer, output_key="missing") == "streamed"
    with_files = NS(text="see", outputs=None, files=files)
    assert answer_text(with_files) == "see\n\n![image](https://f/1.png)\n\n[file](https://f/2.pdf)"
    assert file_markdown("https://", "image") is None
    assert file_markdown("https://[bad/x.png", "image") is None  # Dify's payload is untrusted
    thoughts = (NS(thought="step one"), NS(thought=""), NS(thought="step two"))
    assert answer_reasoning(NS(reasoning="hmm", thoughts=thoughts)) == "hmm\nstep one\nstep two"
    assert answer_reasoning(answer) == ""


def test_broadcast_sections() -> None:
    assert broadcast_section("support", "hi", first=True) == "### support\n\nhi"
    assert broadcast_section("coder", None, first=False) == "\n\n### coder\n\n_(no answer: the app failed)_"


def test_completion_body_and_model_entry() -> None:
    plain = completion_body(completion_id="chatcmpl-1", created=1700000000, model="support", text="hi")
    assert plain == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "support",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": None,
    }
    full = completion_body(
        completion_id="c",
        created=1,
        model="m",
        text="t",
        finish_reason="content_filter",
        usage={"total_tokens": 1},
        reasoning="r",
        conversation_id="thr_1",
    )
    assert full["choices"][0]["message"]["reasoning_content"] == "r" and full["conversation_id"] == "thr_1"
    assert model_entry("support", 5) == {"id": "support", "object": "model", "created": 5, "owned_by": "dify"}


def test_sse_frames_replace_lone_surrogates() -> None:
    assert sse({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert sse({"a": "\ud800"}) == b'data: {"a":"?"}\n\n'


# -- streaming --------------------------------------------------------------------------------------


def writer(**options: Any) -> ChunkWriter:
    return ChunkWriter(
        completion_id="chatcmpl-x",
        created=1700000000,
        model="support",
        include_usage=options.pop("usage", False),
        reasoning=options.pop("reasoning", False),
        hold=options.pop("hold", False),
    )


def decode(frames: list[bytes]) -> list[Any]:
    out = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        payload = frame[6:-2].decode()
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def deltas(frames: list[bytes]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in decode(frames)]


def test_text_chunks_and_the_end() -> None:
    w = writer()
    assert w.feed(Delta("ping")) == [PING]
    assert w.feed(Delta("text", "")) == [] and w.feed(Delta("progress", "LLM")) == []
    first, second = decode(w.feed(Delta("text", "Hel")) + w.feed(Delta("text", "lo")))
    assert first == {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "support",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}],
    }
    assert second["choices"][0]["delta"] == {"content": "lo"}
    assert w.complete("Hello") == [] and w.complete("Goodbye") == []
    assert deltas(w.complete("Hello, world")) == [{"content": ", world"}]
    *chunks, done = decode(w.finish({"total_tokens": 1}))
    assert chunks == [{**first, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}] and done == "[DONE]"


def test_usage_chunk_and_an_empty_answer() -> None:
    w = writer(usage=True)
    role, final, usage, done = decode(w.finish(None))
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""} and role["usage"] is None
    assert final["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"] is None and usage["id"] == "chatcmpl-x" and done == "[DONE]"


def test_moderation_replaces_or_filters() -> None:
    moderation = MessageReplaceEvent()
    early = writer()
    assert deltas(early.feed(Delta("replace", "clean", moderation))) == [{"role": "assistant", "content": "clean"}]
    late = writer(reasoning=True)
    late.feed(Delta("text", "bad words"))
    assert late.feed(Delta("replace", "clean", moderation)) == []
    assert late.feed(Delta("text", "more")) == [] and late.feed(Delta("reasoning", "r")) == []
    assert late.feed(Delta("file", "https://f/1.png", MessageFileEvent(type="image"))) == []
    assert decode(late.finish(None))[0]["choices"][0]["finish_reason"] == "content_filter"
    agent = writer()
    agent.feed(Delta("text", "streamed"))
    assert agent.feed(Delta("replace", "a different final message", MessageEvent())) == []
    assert not agent.filtered


def test_a_held_answer_is_sent_whole_and_a_moderated_one_ends_with_content_filter() -> None:
    held = writer(hold=True)
    assert held.feed(Delta("text", "bad words")) == [] and held.feed(Delta("text", " more")) == []
    assert held.feed(Delta("replace", "clean", MessageReplaceEvent())) == []
    assert deltas(held.complete("clean")) == [{"role": "assistant", "content": "clean"}]
    assert decode(held.finish(None))[-2]["choices"][0]["finish_reason"] == "content_filter"
    untouched = writer(hold=True)
    untouched.feed(Delta("text", "fine"))
    assert deltas(untouched.complete("fine")) == [{"role": "assistant", "content": "fine"}]
    assert decode(untouched.finish(None))[-2]["choices"][0]["finish_reason"] == "stop"


def test_files_as_markdown() -> None:
    w = writer()
    assert deltas(w.feed(Delta("file", "https://f/1.png", MessageFileEvent(type="image")))) == [
        {"role": "assistant", "content": "![image](https://f/1.png)"}
    ]
    assert deltas(w.feed(Delta("file", "https://f/2.pdf", MessageFileEvent(type="document")))) == [
        {"content": "\n\n[file](https://f/2.pdf)"}
    ]
    assert w.feed(Delta("file", "file:///etc/passwd", MessageFileEvent(type="image"))) == []


def test_reasoning_is_opt_in_and_thoughts_are_not_repeated() -> None:
    assert writer().feed(Delta("reasoning", "hidden")) == []
    w = writer(reasoning=True)
    assert deltas(w.feed(Delta("reasoning", "let me think"))) == [
        {"role": "assistant", "reasoning_content": "let me think"}
    ]
    assert w.feed(Delta("reasoning", "")) == []
    thought = AgentThoughtEvent(id="t1", position=1)
    assert w.feed(Delta("thought", "", thought)) == []
    assert deltas(w.feed(Delta("thought", "Look", thought))) == [{"reasoning_content": "Look"}]
    assert deltas(w.feed(Delta("thought", "Look it up", thought))) == [{"reasoning_content": " it up"}]
    assert w.feed(Delta("thought", "Something else", thought)) == []
    assert deltas(w.feed(Delta("thought", "By position", AgentThoughtEvent(id=None, position=2)))) == [
        {"reasoning_content": "By position"}
    ]


def test_errors_after_the_start() -> None:
    error = OpenAIError(502, "The Dify app failed to answer.", type="server_error", code="upstream_error")
    frame, done = ChunkWriter.error(error)
    assert json.loads(frame[6:]) == error.body() and done == DONE


def test_held_text_goes_out_as_the_final_answer() -> None:
    # A workflow whose answer is a chosen output: streamed text is held, the final text sent once.
    w = ChunkWriter(
        completion_id="chatcmpl-x", created=1700000000, model="flow", include_usage=False, reasoning=False, hold=True
    )
    assert w.feed(Delta("text", "thinking out loud")) == [] and w.feed(Delta("ping")) == [PING]
    assert w.feed(Delta("replace", "other", WorkflowFinishedEvent())) == []
    assert w.feed(Delta("file", "https://f/1.png", MessageFileEvent(type="image"))) == []
    assert deltas(w.complete("The summary.")) == [{"role": "assistant", "content": "The summary."}]
    assert w.sent == "The summary."
    final, done = decode(w.finish(None))
    assert final["choices"][0]["finish_reason"] == "stop" and done == "[DONE]"


def test_a_dify_call_gives_the_bridge_its_arguments() -> None:
    call = DifyCall("q", {"system": "s"}, [{"type": "image"}])
    assert call.ask_args(user="u", conversation_key=None, app="a") == {
        "user": "u",
        "conversation_key": None,
        "inputs": {"system": "s"},
        "files": [{"type": "image"}],
        "app": "a",
        "new_conversation": False,
    }
    assert call.ask_args(user="u", conversation_key="thr_1", app="a", new_conversation=True)["new_conversation"]


def test_only_a_thread_made_up_here_is_asked_as_a_new_conversation() -> None:
    assert conversation_args(None) == {"conversation_key": None, "new_conversation": False}
    client_id = Thread("conv-1", new=True)  # a client's own conversation_id: another request may carry it
    assert conversation_args(client_id) == {"conversation_key": "conv-1", "new_conversation": False}
    minted = Thread("thr_1", new=True, minted=True)
    assert conversation_args(minted) == {"conversation_key": "thr_1", "new_conversation": True}


@pytest.mark.parametrize("include_usage", [False, True])
def test_content_chunks_are_exactly_the_json_of_their_chunk(include_usage: bool) -> None:
    model = 'sup"port \\ "content":"" ü'  # quotes and the marker itself in a model name stay escaped
    w = ChunkWriter(completion_id="chatcmpl-1", created=7, model=model, include_usage=include_usage, reasoning=False)
    texts = ["The", ' "quoted" ', "\\", "line\nbreak", "ünï 字 🙂", '"content":""', "\ud800 lone", "</script>"]
    frames = [frame for text in texts for frame in w.text(text)]
    for index, (text, frame) in enumerate(zip(texts, frames, strict=True)):
        delta = {"role": "assistant", "content": text} if index == 0 else {"content": text}
        chunk: dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 7,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        if include_usage:
            chunk["usage"] = None
        assert frame == sse(chunk)
    assert w.sent == "".join(texts)
