"""`AnswerMeter.measure` (gateway/usage/meter.py): every way an answer stream ends is counted once,
and measuring keeps no generator per open answer. The surfaces end to end: test_usage_cli_admin.py."""

from __future__ import annotations

import asyncio

import pytest

from gateway.clock import FakeClock
from gateway.dify.models import Answer
from gateway.exceptions import Overloaded, UpstreamError
from gateway.usage.meter import AnswerMeter
from gateway.usage.records import UsageRecord
from tests.gateway.dify.test_response_body import async_generators

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    async def record(self, record: UsageRecord) -> bool:
        await asyncio.sleep(0)  # a store write: a cancelled caller must not cut it off
        self.records.append(record)
        return True


class Stream:
    """What the meter needs of a `DifyAnswerStream`: open, close, and the answer so far."""

    def __init__(self, *, opening: BaseException | None = None, complete: bool = True) -> None:
        self.opening = opening
        self.answer = Answer(text="hi", app="a", mode="chat", complete=complete, message_id="m1")
        self.closed = False

    async def __aenter__(self) -> Stream:
        if self.opening is not None:
            raise self.opening
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed = True


def meter() -> tuple[AnswerMeter, Recorder]:
    recorder = Recorder()
    clock = FakeClock()
    made = AnswerMeter(recorder=recorder, guard=None, clock=clock, workspace="w", endpoint="ep", plugin="p")  # type: ignore[arg-type]
    return made, recorder


async def test_a_complete_answer_is_ok_and_measuring_keeps_no_generator() -> None:
    answers, recorder = meter()
    stream = Stream()
    with async_generators() as seen:
        async with answers.measure(stream, app="a", user="u") as opened:  # type: ignore[arg-type]
            assert id(opened) == id(stream)
            assert seen == []  # nothing suspended per open answer but the stream itself
    assert stream.closed
    assert [(r.outcome, r.key, r.user, r.app) for r in recorder.records] == [("ok", "m1", "u", "a")]


async def test_an_incomplete_answer_or_a_reader_that_leaves_is_cancelled() -> None:
    answers, recorder = meter()
    async with answers.measure(Stream(complete=False), app="a", user="u"):  # type: ignore[arg-type]
        pass

    async def reading() -> None:
        async with answers.measure(Stream(), app="a", user="u"):  # type: ignore[arg-type]
            await asyncio.Event().wait()

    task = asyncio.ensure_future(reading())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.outcome for r in recorder.records] == ["cancelled", "cancelled"]  # the second written though cancelled


async def test_failures_are_errors_and_an_overloaded_open_is_not_counted() -> None:
    answers, recorder = meter()
    with pytest.raises(Overloaded):
        async with answers.measure(Stream(opening=Overloaded("full")), app="a", user="u"):  # type: ignore[arg-type]
            pass
    assert recorder.records == []  # nothing reached Dify; the work runs again later
    with pytest.raises(UpstreamError):
        async with answers.measure(Stream(opening=UpstreamError("boom")), app="a", user="u"):  # type: ignore[arg-type]
            pass
    with pytest.raises(ValueError):
        async with answers.measure(Stream(), app="a", user="u"):  # type: ignore[arg-type]
            raise ValueError("the reader failed")
    outcomes = [(r.outcome, r.key.startswith("local-")) for r in recorder.records]
    assert outcomes == [("error", True), ("error", False)]  # never opened: no answer id, a local key


async def test_an_open_or_a_close_that_fails_or_is_cancelled_is_counted_as_such() -> None:
    answers, recorder = meter()
    with pytest.raises(asyncio.CancelledError):
        async with answers.measure(Stream(opening=asyncio.CancelledError()), app="a", user="u"):  # type: ignore[arg-type]
            pass

    class FailingClose(Stream):
        async def __aexit__(self, *exc: object) -> None:
            raise UpstreamError("closing failed")

    with pytest.raises(UpstreamError):
        async with answers.measure(FailingClose(), app="a", user="u"):  # type: ignore[arg-type]
            pass
    assert [r.outcome for r in recorder.records] == ["cancelled", "error"]
