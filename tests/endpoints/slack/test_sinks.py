"""The sinks against an in-memory Slack thread: splitting while streaming, reruns, fallbacks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse

from endpoints.slack.client import Posted
from endpoints.slack.sinks import EMPTY_ANSWER, EditSink, NativeSink
from gateway.plugin import open_fence

pytestmark = pytest.mark.anyio


def slack_error(code: str, status: int = 200) -> SlackApiError:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.test/api",
        req_args={},
        data={"ok": False, "error": code},
        headers={},
        status_code=status,
    )
    return SlackApiError(code, response)


class Thread:
    """Stands in for `SlackOut`: keeps the thread's messages and the calls made."""

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        self.texts: dict[str, str] = {}
        self.open: set[str] = set()
        self.calls: list[tuple[str, Any]] = []
        self.fail: dict[str, SlackApiError] = {}
        self._n = 0

    def _check(self, name: str) -> None:
        if name in self.fail:
            raise self.fail.pop(name)

    def _new(self, text: str, kind: str) -> str:
        self._n += 1
        ts = f"1.{self._n}"
        self.texts[ts] = text
        self.posted.append(Posted(ts, kind))
        return ts

    async def post(self, text: str) -> str:
        self.calls.append(("post", text))
        self._check("post")
        return self._new(text, "post")

    async def update(self, ts: str, text: str) -> None:
        self.calls.append(("update", text))
        self._check("update")
        self.texts[ts] = text

    async def forget(self, ts: str) -> None:
        self.calls.append(("delete", ts))
        del self.texts[ts]
        self.posted = [p for p in self.posted if p.ts != ts]

    async def start_stream(self, markdown: str, *, team: str | None, user: str | None) -> str:
        self.calls.append(("start", (markdown, team, user)))
        self._check("start")
        ts = self._new(markdown, "stream")
        self.open.add(ts)
        return ts

    async def append_stream(self, ts: str, markdown: str) -> None:
        self.calls.append(("append", markdown))
        self._check("append")
        assert ts in self.open
        self.texts[ts] += markdown

    async def stop_stream(self, ts: str, markdown: str | None = None) -> None:
        self.calls.append(("stop", ts))
        self._check("stop")
        self.open.discard(ts)

    async def set_status(self, status: str) -> bool:
        self.calls.append(("status", status))
        return True

    def shown(self) -> list[str]:
        return [self.texts[p.ts] for p in self.posted]


def native(thread: Thread, limit: int = 200, in_channel: bool = True) -> NativeSink:
    return NativeSink(
        thread,  # type: ignore[arg-type]
        limit=limit,
        edit_limit=200,
        thinking="…thinking",
        team="T1",
        user="U1",
        in_channel=in_channel,
        logger=logging.LoggerAdapter(logging.getLogger("test"), {}),
    )


def growing(text: str, step: int = 37) -> list[str]:
    return [text[:end] for end in range(step, len(text), step)] + [text]


async def test_native_stream_rolls_over_at_the_limit_and_reopens_code() -> None:
    code = "\n".join(f"value_{i} = {i}" for i in range(40))
    text = "Intro paragraph.\n\n```python\n" + code + "\n```\n\nThe end, with some words after it."
    thread = Thread()
    sink = native(thread)
    await sink.begin()
    for partial in growing(text):
        await sink.show(partial)
    streams = await sink.finish(text)
    shown = thread.shown()
    assert streams == len(shown) > 2
    assert thread.open == set()
    assert all(len(message) <= 200 for message in shown)
    assert all(not open_fence(message) for message in shown)  # every message renders its code block
    rebuilt = "\n".join(shown).replace("\n```\n```\n", "\n")
    assert rebuilt.split() == text.split()
    assert thread.calls[0] == ("status", "…thinking")
    assert thread.calls[1][0] == "start" and thread.calls[1][1][1:] == ("T1", "U1")


async def test_native_stream_in_a_dm_names_no_recipient_and_waits_for_text() -> None:
    thread = Thread()
    sink = native(thread, in_channel=False)
    await sink.show("\n\n  ")  # nothing to show yet: no stream is started
    assert thread.calls == []
    await sink.show("\n\n  Hello")
    assert thread.calls == [("start", ("Hello", None, None))]
    assert await sink.finish("\n\n  Hello there") == 1
    assert thread.shown() == ["Hello there"]


async def test_native_stream_room_too_small_starts_the_next_stream() -> None:
    thread = Thread()
    sink = native(thread)
    await sink.show("a" * 170)
    await sink.show("a" * 170 + " " + "b" * 60)
    await sink.finish("a" * 170 + " " + "b" * 60)
    assert thread.shown() == ["a" * 170, "b" * 60]


async def test_native_replace_takes_back_the_stream_and_posts_the_replacement() -> None:
    thread = Thread()
    sink = native(thread)
    await sink.show("Something regrettable")
    await sink.show("Sorry, I can't answer that.")
    assert await sink.finish("Sorry, I can't answer that.") == 1
    assert thread.shown() == ["Sorry, I can't answer that."]
    assert ("delete", "1.1") in thread.calls


async def test_native_falls_back_to_edits_when_streaming_is_refused() -> None:
    thread = Thread()
    thread.fail["start"] = slack_error("not_allowed_token_type")
    sink = native(thread)
    await sink.show("Hello")
    await sink.show("Hello world")
    assert await sink.finish("Hello world, bye") == 1
    assert thread.shown() == ["Hello world, bye"]
    assert [name for name, _ in thread.calls] == ["start", "post", "update", "update"]


async def test_native_expired_stream_continues_in_an_edited_message() -> None:
    thread = Thread()
    sink = native(thread)
    await sink.show("First part")
    thread.fail["append"] = slack_error("message_not_in_streaming_state")
    thread.fail["stop"] = slack_error("message_not_in_streaming_state")
    await sink.show("First part and more")
    assert await sink.finish("First part and more, done") == 2
    assert thread.shown() == ["First part", "and more, done"]


@pytest.mark.parametrize(("code", "status"), [("invalid_auth", 200), ("ratelimited", 429)])
async def test_native_fatal_and_rate_limit_errors_are_raised(code: str, status: int) -> None:
    thread = Thread()
    thread.fail["start"] = slack_error(code, status)
    with pytest.raises(SlackApiError):
        await native(thread).show("Hello")


async def test_native_empty_answer_says_so() -> None:
    thread = Thread()
    assert await native(thread).finish("   ") == 1
    assert thread.shown() == [EMPTY_ANSWER]


async def test_edit_sink_posts_a_placeholder_then_edits_and_continues() -> None:
    thread = Thread()
    sink = EditSink(thread, limit=200, thinking="…thinking")  # type: ignore[arg-type]
    await sink.begin()
    await sink.show("")
    await sink.show("**Hello**")
    await sink.show("**Hello**")  # unchanged: no call
    text = "**Hello** " + "word " * 60
    assert await sink.finish(text) == 2
    assert thread.calls[:2] == [("post", "…thinking"), ("update", "*Hello*")]
    assert len([c for c in thread.calls if c == ("update", "*Hello*")]) == 1
    assert " ".join(thread.shown()).split() == ["*Hello*", *["word"] * 60]


async def test_edit_sink_rerun_reuses_and_trims_earlier_messages() -> None:
    thread = Thread()
    earlier = [await thread.post("old one"), await thread.post("old two")]
    sink = EditSink(thread, limit=200, thinking="…thinking", reuse=earlier)  # type: ignore[arg-type]
    await sink.begin()  # the placeholder is there already
    assert await sink.finish("") == 1
    assert thread.shown() == [EMPTY_ANSWER]
    assert ("delete", earlier[1]) in thread.calls
