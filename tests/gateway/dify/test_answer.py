"""AnswerBuilder edge cases not reached through the client tests."""

from __future__ import annotations

from gateway.dify.answer import AnswerBuilder
from gateway.dify.events import MessageEndEvent, MessageEvent, TextChunkData, TextChunkEvent
from gateway.dify.models import DifyApp

APP = DifyApp("a", "https://x/v1", "k", "chat")


def test_empty_chunks_produce_no_delta() -> None:
    builder = AnswerBuilder(APP)
    assert builder.feed(MessageEvent(answer="")) == []
    assert builder.feed(TextChunkEvent(data=TextChunkData(text=""))) == []
    assert builder.text == ""


def test_message_end_without_usage_keeps_none() -> None:
    builder = AnswerBuilder(APP)
    builder.feed(MessageEvent(answer="hi", message_id=None))
    builder.feed(MessageEndEvent(id="m-9"))
    answer = builder.answer()
    assert answer.usage is None and answer.message_id == "m-9" and answer.complete
    assert builder.final


def test_partial_snapshot() -> None:
    builder = AnswerBuilder(APP)
    builder.feed(MessageEvent(answer="a", task_id="t"))
    assert builder.answer().complete is False
    assert builder.answer(complete=True).complete is True
