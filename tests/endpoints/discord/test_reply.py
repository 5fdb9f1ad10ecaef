"""The 15-minute interaction token: switching to channel messages, or ending with a note."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from endpoints.discord.reply import CONTINUED_NOTE, LATE_NOTE, InteractionReply
from gateway.clock import FakeClock

pytestmark = pytest.mark.anyio


@dataclass
class Renderer:
    updates: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    accept: bool = True

    async def update(self, text: str) -> bool:
        self.updates.append(text)
        return self.accept

    async def finish(self, text: str) -> None:
        self.finished.append(text)


def reply(clock: FakeClock, channel: Renderer | None) -> tuple[InteractionReply, Renderer]:
    webhook = Renderer()
    return InteractionReply(webhook=webhook, channel=channel, deadline=clock.time() + 10, clock=clock), webhook  # type: ignore[arg-type]


async def test_before_the_deadline_everything_goes_through_the_webhook() -> None:
    clock = FakeClock()
    channel = Renderer()
    answer, webhook = reply(clock, channel)
    await answer.update("Hel")
    await answer.finish("Hello")
    assert webhook.updates == ["Hel"] and webhook.finished == ["Hello"]
    assert not channel.updates and not channel.finished and not answer.switched


async def test_past_the_deadline_the_rest_goes_to_the_channel() -> None:
    clock = FakeClock()
    channel = Renderer()
    answer, webhook = reply(clock, channel)
    await answer.update("```py\nx = 1")
    clock.advance(10)
    await answer.update("```py\nx = 1\ny = 2")
    assert webhook.finished == ["```py\nx = 1"]  # what it showed, finished (fence closed by paging)
    assert answer.switched
    assert channel.updates == ["```py\n\ny = 2"]  # the block reopened
    await answer.finish("```py\nx = 1\ny = 2\n```\nDone")
    assert channel.finished == ["```py\n\ny = 2\n```\nDone"]
    await answer.update("```py\nx = 1\ny = 2\n```\nDone!")
    assert len(webhook.finished) == 1  # the token is not used again


async def test_a_skipped_webhook_update_is_shown_by_the_channel() -> None:
    clock = FakeClock()
    channel = Renderer()
    answer, webhook = reply(clock, channel)
    await answer.update("one")
    webhook.accept = False  # throttled or rate-limited: not on screen
    await answer.update("one two")
    clock.advance(11)
    await answer.finish("one two three")
    assert webhook.finished == ["one"]
    assert channel.finished == [" two three"]


async def test_a_deadline_before_any_words_leaves_a_pointer_below() -> None:
    clock = FakeClock()
    channel = Renderer()
    answer, webhook = reply(clock, channel)
    clock.advance(10)
    await answer.finish("")
    assert webhook.finished == [CONTINUED_NOTE]
    assert channel.finished == []  # nothing more to show


async def test_a_replaced_answer_past_the_deadline_is_finished_whole() -> None:
    clock = FakeClock()
    channel = Renderer()
    answer, webhook = reply(clock, channel)
    await answer.update("draft")
    clock.advance(10)
    await answer.update("[moderated]")
    assert webhook.finished == ["[moderated]"]


async def test_without_a_bot_token_the_answer_ends_with_a_note() -> None:
    clock = FakeClock()
    answer, webhook = reply(clock, None)
    await answer.update("so far")
    clock.advance(10)
    await answer.update("so far and more")
    assert answer.stopped and not answer.switched
    assert webhook.finished == [f"so far and more\n\n{LATE_NOTE}"]
    await answer.update("ignored")
    await answer.finish("ignored")
    assert len(webhook.finished) == 1


async def test_without_a_bot_token_and_no_words_only_the_note() -> None:
    clock = FakeClock()
    answer, webhook = reply(clock, None)
    clock.advance(10)
    await answer.finish("")
    assert webhook.finished == [LATE_NOTE]
