"""Slack's adapter for the chat-delivery engine, against the fake Slack on a real server through
slack_sdk: what Slack adds to the engine (its tests: tests/gateway/delivery/test_chat_engine.py):
mrkdwn section blocks, the status and recipients of native streams, defused mentions, which errors
fall back to edits and which go up, and records written before the engine."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.slack_response import SlackResponse

from endpoints.slack.answer import RECORD_TTL, _upgrade_record
from endpoints.slack.client import open_client, rate_limited, slack_failures
from endpoints.slack.render import to_mrkdwn
from endpoints.slack.settings import SlackSettings
from endpoints.slack.thread import SlackStream, SlackThread, answer_rules, failure_note
from gateway.plugin import (
    JobInfo,
    MemoryMessages,
    PostedMessage,
    RetryJob,
    StoredMessages,
    UpstreamError,
    default_failure_note,
    deliver,
    open_fence,
)
from tests.endpoints.slack.conftest import BOT_TOKEN
from tests.gateway.delivery.chat_fakes import FakeAnswer, VirtualClock, text
from tests.support.fake_slack import FakeSlack

pytestmark = [pytest.mark.anyio, pytest.mark.live]

LOGGER = logging.LoggerAdapter(logging.getLogger("test"), {})


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def settings(fake: FakeSlack, **values: Any) -> SlackSettings:
    return SlackSettings(bot_token=SecretStr(BOT_TOKEN), api_base_url=fake.api_url, edit_interval=0.5, **values)


def thread(client: AsyncWebClient, config: SlackSettings, channel: str = "C1", *, native: bool = False) -> SlackThread:
    stream = SlackStream(
        client,
        channel,
        "1.1",
        limit=config.stream_limit,
        recipient=None if channel.startswith("D") else ("T1", "U1"),
        logger=LOGGER,
    )
    return SlackThread(
        client,
        channel,
        "1.1",
        rules=answer_rules(config),
        native=stream if native else None,
        status=config.thinking_text,
    )


async def run(fake: FakeSlack, clock: VirtualClock, answer: FakeAnswer, channel: str = "C1", **values: Any) -> None:
    config = settings(fake, **values)
    async with open_client(config, clock) as client:
        await deliver(
            answer,
            thread(client, config, channel, native=config.native_streaming),
            clock=clock,
            posted=MemoryMessages(),
        )


async def test_an_answer_replaces_its_placeholder_in_mrkdwn_section_blocks(
    fake: FakeSlack, clock: VirtualClock
) -> None:
    await run(fake, clock, FakeAnswer(clock, text("**Hello** ", "world, <!channel>", delay=1.0)))

    [post] = fake.calls_to("chat.postMessage")
    assert post.params["text"] == "…thinking" and post.params["thread_ts"] == "1.1"
    final = fake.calls_to("chat.update")[-1].params
    assert final["text"] == "*Hello* world, &lt;!channel&gt;"  # rendered, and never a ping
    assert final["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": final["text"]}}]
    assert fake.texts("C1", "1.1") == [final["text"]]
    assert fake.calls_to("assistant.threads.setStatus") == []  # the status goes with native streaming


async def test_long_answers_are_paged_without_cutting_a_link(fake: FakeSlack, clock: VirtualClock) -> None:
    markdown = "**Sources**\n\n" + " ".join(f"[doc {i}](https://example.com/{i})" for i in range(20))
    await run(fake, clock, FakeAnswer(clock, text(markdown)), message_limit=200)

    shown = fake.texts("C1", "1.1")
    assert len(shown) > 2 and shown[0].startswith("*Sources*")
    assert all(len(part) <= 200 and part.count("<") == part.count(">") for part in shown)
    assert " ".join(shown).split() == to_mrkdwn(markdown).split()


async def test_native_streams_in_a_channel_name_their_recipient_and_close_their_code(
    fake: FakeSlack, clock: VirtualClock
) -> None:
    code = "\n".join(f"value_{i} = {i}" for i in range(40))
    answer = "Hi <!channel>.\n\n```python\n" + code + "\n```\n\nThe end, with some words after it."
    await run(fake, clock, FakeAnswer(clock, text(answer)), native_streaming=True, stream_limit=200)

    assert fake.calls[0].method == "assistant.threads.setStatus"  # tried first (a channel has none: ignored)
    starts = fake.calls_to("chat.startStream")
    assert len(starts) > 2
    assert all(s.params["recipient_team_id"] == "T1" and s.params["recipient_user_id"] == "U1" for s in starts)
    assert starts[0].params["markdown_text"].startswith("Hi <\u200b!channel>.")  # a stream never pings
    shown = fake.texts("C1", "1.1")
    assert all(len(message) <= 200 and not open_fence(message) for message in shown)
    assert "\n".join(shown).replace("\n```\n```\n", "\n").replace("\u200b", "").split() == answer.split()
    assert not any(m.streaming for m in fake.messages.values())
    assert fake.calls_to("chat.postMessage") == []


async def test_a_native_stream_in_a_dm_names_no_recipient(fake: FakeSlack, clock: VirtualClock) -> None:
    await run(fake, clock, FakeAnswer(clock, text("\n\n  ", "Hello", delay=1.0)), channel="D1", native_streaming=True)

    [start] = fake.calls_to("chat.startStream")
    assert start.params["markdown_text"] == "Hello"  # blank text starts no stream
    assert "recipient_team_id" not in start.params and "recipient_user_id" not in start.params
    assert fake.calls_to("assistant.threads.setStatus")[0].params["status"] == "…thinking"
    assert fake.texts("D1", "1.1") == ["Hello"]


async def test_a_refused_stream_goes_on_in_edited_messages(fake: FakeSlack, clock: VirtualClock) -> None:
    fake.errors["chat.startStream"] = "not_allowed_token_type"
    await run(fake, clock, FakeAnswer(clock, text("Hello", " world, bye", delay=1.0)), native_streaming=True)

    assert [c.method for c in fake.calls][-1] == "chat.update"
    assert fake.texts("C1", "1.1") == ["Hello world, bye"]


async def test_an_expired_stream_continues_in_an_edited_message(fake: FakeSlack, clock: VirtualClock) -> None:
    class Expiring(SlackStream):
        """Slack lets the stream start, then it expires."""

        async def start(self, text: str) -> str:
            ref = await SlackStream.start(self, text)
            fake.errors["chat.appendStream"] = fake.errors["chat.stopStream"] = "message_not_in_streaming_state"
            return ref

    config = settings(fake, native_streaming=True)
    async with open_client(config, clock) as client:
        stream = Expiring(client, "C1", "1.1", limit=config.stream_limit, recipient=("T1", "U1"), logger=LOGGER)
        slack = SlackThread(client, "C1", "1.1", rules=answer_rules(config), native=stream)
        answer = FakeAnswer(clock, text("First part", " and more, done", delay=1.0))
        await deliver(answer, slack, clock=clock, posted=MemoryMessages())

    assert fake.texts("C1", "1.1") == ["First part", "and more, done"]


async def test_a_fatal_error_while_streaming_goes_up(fake: FakeSlack, clock: VirtualClock) -> None:
    fake.errors["chat.startStream"] = "invalid_auth"
    with pytest.raises(SlackApiError):
        await run(fake, clock, FakeAnswer(clock, text("Hello")), native_streaming=True)
    assert fake.calls_to("chat.postMessage") == []


def slack_error(code: str, status: int, headers: dict[str, str] | None = None) -> SlackApiError:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.test/api",
        req_args={},
        data={"ok": False, "error": code},
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError(code, response)  # type: ignore[no-untyped-call]  # slack_sdk leaves __init__ unannotated


async def test_a_lasting_429_reaches_the_engine_then_retries_the_job_after_retry_after() -> None:
    limited = rate_limited(slack_error("ratelimited", 429, {"Retry-After": "7"}))
    assert limited is not None and limited.retry_after == 7.0
    assert rate_limited(slack_error("invalid_auth", 200)) is None
    with pytest.raises(RetryJob) as retry:
        async with slack_failures(None):  # type: ignore[arg-type]
            raise limited
    assert retry.value.after == 7.0


class Storage:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.fences: list[object] = []

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str, *, ttl: float | None = None, fence: object = None) -> None:
        self.values[key] = value
        self.fences.append(fence)


async def test_a_record_written_before_the_engine_is_edited_by_a_rerun() -> None:
    storage = Storage()
    job = JobInfo("job_1", "answer", {}, 2, None)
    storage.values["out:job_1"] = json.dumps([["1.2", "post"], ["1.3", "stream"]])

    await _upgrade_record(storage, "out:job_1", job.lease)  # type: ignore[arg-type]

    record = StoredMessages(storage, "out:job_1", ttl=RECORD_TTL, fence=job.lease)
    assert await record.load() == [PostedMessage("1.2"), PostedMessage("1.3", "stream")]
    assert storage.fences == [job.lease]
    await _upgrade_record(storage, "out:job_1", job.lease)  # type: ignore[arg-type]
    assert storage.fences == [job.lease]  # nothing left to upgrade


async def test_a_delete_ignores_a_message_gone_already_but_not_other_errors(
    fake: FakeSlack, clock: VirtualClock
) -> None:
    config = settings(fake)
    async with open_client(config, clock) as client:
        slack = thread(client, config)
        fake.errors["chat.delete"] = "message_not_found"
        await slack.delete("1.2")  # deleted by hand meanwhile: nothing left to do
        fake.errors["chat.delete"] = "invalid_auth"
        with pytest.raises(SlackApiError):  # not swallowed: the message would stay up, forgotten
            await slack.delete("1.2")


def test_the_failure_note_is_the_engines_in_italics() -> None:
    error = UpstreamError("boom", upstream_code="quota_exceeded")
    for partial in (False, True):
        assert failure_note(error, partial) == f"_{default_failure_note(error, partial)}_"
    assert "boom" not in failure_note(error, False)  # the detail goes to the log, not the thread
