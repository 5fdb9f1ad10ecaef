"""The Telegram webhook's ack path: the bot's identity is read from storage once, then kept in the
endpoint's in-process memory for `MEMORY_TTL` on the clock; who gets a job does not change."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from endpoints.telegram import plugin
from endpoints.telegram.bot import MEMORY_TTL, recent
from endpoints.telegram.settings import TelegramSettings
from gateway.testing import FakeContext, VirtualClock
from gateway.testing.platforms.telegram import BOT_ID, BOT_USERNAME, TOKEN, group_chat, message_update, user
from gateway.testing.signing import telegram_request

pytestmark = pytest.mark.anyio

SECRET = "webhook-secret-for-tests"
BEN = user(2002, "Ben", "ben")
IDENTITY_KEY = f"bot:me:{BOT_ID}"


class Reads:
    """Counts the storage reads of the bot's identity."""

    def __init__(self, ctx: FakeContext[TelegramSettings], monkeypatch: pytest.MonkeyPatch) -> None:
        self.keys: list[str] = []
        storage = ctx.storage
        read = storage.get

        async def get(key: str) -> str | None:
            self.keys.append(key)
            return await read(key)

        monkeypatch.setattr(storage, "get", get)

    @property
    def identity(self) -> int:
        return sum(1 for key in self.keys if key.startswith("bot:me:"))


@pytest.fixture
async def ctx() -> AsyncIterator[FakeContext[TelegramSettings]]:
    async with FakeContext(plugin, {"bot_token": TOKEN, "secret_token": SECRET}, clock=VirtualClock()) as ctx:
        yield ctx


async def know_the_bot(ctx: FakeContext[TelegramSettings], bot_id: int = BOT_ID, username: str = BOT_USERNAME) -> None:
    await ctx.storage.set(f"bot:me:{bot_id}", json.dumps({"id": bot_id, "username": username}))


async def send(ctx: FakeContext[TelegramSettings], update: dict[str, Any]) -> None:
    response = await ctx.dispatch(telegram_request(SECRET, update).request("/"))
    assert response.status == 200


async def test_the_identity_is_read_once_then_kept_in_memory_for_its_ttl(
    ctx: FakeContext[TelegramSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    await know_the_bot(ctx)
    reads = Reads(ctx, monkeypatch)

    for n in range(5):
        await send(ctx, message_update(f"question {n}"))
    assert reads.identity == 1  # the first ack read it; the others took it from memory
    assert len(ctx.jobs.enqueued) == 5

    assert isinstance(ctx.clock, VirtualClock)
    ctx.clock.advance(MEMORY_TTL)
    await send(ctx, message_update("later"))
    assert reads.identity == 2  # past its time it is read again


async def test_group_messages_for_others_get_no_job_with_the_identity_in_memory(
    ctx: FakeContext[TelegramSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    await know_the_bot(ctx)
    reads = Reads(ctx, monkeypatch)
    group = group_chat()

    await send(ctx, message_update("just chatting", sender=BEN, chat=group))
    await send(ctx, message_update("still chatting", sender=BEN, chat=group))
    assert ctx.jobs.enqueued == [] and reads.identity == 1
    await send(ctx, message_update(f"@{BOT_USERNAME} a question", sender=BEN, chat=group))
    assert len(ctx.jobs.enqueued) == 1 and reads.identity == 1


async def test_until_the_bot_is_known_every_ack_looks_and_every_message_is_queued(
    ctx: FakeContext[TelegramSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Reads(ctx, monkeypatch)
    group = group_chat()

    await send(ctx, message_update("just chatting", sender=BEN, chat=group))
    await send(ctx, message_update("still chatting", sender=BEN, chat=group))
    assert len(ctx.jobs.enqueued) == 2 and reads.identity == 2  # not known: nothing kept, the job decides
    await know_the_bot(ctx)  # e.g. the first answer's getMe, on another replica
    await send(ctx, message_update("more chatting", sender=BEN, chat=group))
    assert len(ctx.jobs.enqueued) == 2  # known at once, without waiting for a memory to expire


async def test_another_bots_token_is_another_bot_at_once(ctx: FakeContext[TelegramSettings]) -> None:
    await know_the_bot(ctx)
    await know_the_bot(ctx, 987654321, "new_dify_bot")
    first = await recent(ctx, TOKEN)
    assert first is not None and first.username == BOT_USERNAME
    other = await recent(ctx, "987654321:" + "N" * 35)
    assert other is not None and (other.id, other.username) == (987654321, "new_dify_bot")
