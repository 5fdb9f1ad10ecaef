"""The Lark ack path: group messages are told apart by the bot's open_id, read from storage once
and then kept in the endpoint's in-process memory for a minute on the clock."""

from __future__ import annotations

import pytest

from endpoints.lark import BOT_MEMORY_TTL
from endpoints.lark.api import BOT_KEY
from gateway.testing import VirtualClock, lark_message_event
from tests.endpoints.lark.conftest import BOT, MENTION_BOT, TOKEN, LarkBench

pytestmark = pytest.mark.anyio

OTHER = ("@_user_1", "ou_someone_else", "Ana")


def count_bot_reads(bench: LarkBench, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    keys: list[str] = []
    storage = bench.ctx.storage
    read = storage.get

    async def get(key: str) -> str | None:
        keys.append(key)
        return await read(key)

    monkeypatch.setattr(storage, "get", get)
    return keys


def group(text: str, mention: tuple[str, str, str]) -> dict[str, object]:
    return lark_message_event(f"{mention[0]} {text}", token=TOKEN, chat_type="group", mentions=[mention])


async def test_the_bot_is_read_once_and_mentions_of_others_still_get_no_job(
    bench: LarkBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bench.ctx.storage.set(BOT_KEY, BOT)
    keys = count_bot_reads(bench, monkeypatch)

    for n in range(3):
        assert (await bench.deliver(group(f"hi {n}", OTHER))).status == 200
    assert bench.ctx.jobs.enqueued == []  # mentions of someone else: acked without a job
    assert (await bench.deliver(group("a question", MENTION_BOT))).status == 200
    assert len(bench.ctx.jobs.enqueued) == 1
    assert keys.count(BOT_KEY) == 1  # then from memory

    assert isinstance(bench.ctx.clock, VirtualClock)
    bench.ctx.clock.advance(BOT_MEMORY_TTL)
    await bench.deliver(group("later", OTHER))
    assert keys.count(BOT_KEY) == 2


async def test_until_the_bot_is_known_group_mentions_are_queued_and_it_counts_at_once(
    bench: LarkBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = count_bot_reads(bench, monkeypatch)
    await bench.deliver(group("hi", OTHER))
    assert len(bench.ctx.jobs.enqueued) == 1  # not known: the job decides
    await bench.ctx.storage.set(BOT_KEY, BOT)  # e.g. the first answer learned it
    await bench.deliver(group("hi again", OTHER))
    assert len(bench.ctx.jobs.enqueued) == 1 and keys.count(BOT_KEY) == 2
