"""The gateway bot's behaviour, with discord.py's Message, channels and threads mocked at their own
level (`channel.send`, `channel.get_partial_message(id).edit`, `channel.typing`,
`message.create_thread`) and the Dify side a scripted stream on an injected virtual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest

from bots.cogs.chat import Chat
from bots.rendering import Trigger
from bots.responder import EMPTY_PROMPT, RESET_DONE, Responder
from endpoints.discord.settings import DiscordSettings
from gateway.dify.models import Answer, Delta
from gateway.exceptions import Overloaded, UpstreamError
from tests.gateway.delivery.chat_fakes import VirtualClock
from tests.support.discord_interactions import APPLICATION_ID, new_key, public_key_hex

pytestmark = pytest.mark.anyio

ME = 99
GUILD = 1


# -- the Dify side: a scripted answer on a virtual clock -------------------------------------------------


class ScriptedStream:
    def __init__(self, chunks: list[str], clock: VirtualClock, step: float, error: str | None) -> None:
        self._chunks, self._clock, self._step, self._error = chunks, clock, step, error
        self.answer = Answer(text="".join(chunks), app="a", mode="chat", conversation_id="conv-1")

    async def __aenter__(self) -> ScriptedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def deltas(self) -> AsyncIterator[Delta]:
        yield Delta("ping")
        for chunk in self._chunks:
            await self._clock.sleep(self._step)
            yield Delta("text", chunk)
        if self._error:
            raise UpstreamError(self._error)


@dataclass
class FakeApps:
    clock: VirtualClock
    chunks: list[str] = field(default_factory=lambda: ["Hello", " there", "!"])
    step: float = 0.25
    error: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)

    def stream(self, query: str, **kwargs: Any) -> ScriptedStream:
        self.calls.append({"query": query, **kwargs})
        return ScriptedStream(self.chunks, self.clock, self.step, self.error)

    async def reset(self, key: str, *, user: str | None = None) -> None:
        self.resets.append(key if user is None else f"{key}|{user}")


@dataclass
class FakeContext:
    apps: FakeApps
    settings: DiscordSettings


def settings(**changes: Any) -> DiscordSettings:
    return DiscordSettings(application_id=APPLICATION_ID, public_key=public_key_hex(new_key()), **changes)


# -- the Discord side: discord.py objects, mocked -----------------------------------------------------


@dataclass
class Screen:
    """What a person would see, and in which order things happened."""

    events: list[str] = field(default_factory=list)
    messages: list[MagicMock] = field(default_factory=list)
    edit_times: list[float] = field(default_factory=list)
    clock: VirtualClock | None = None

    def contents(self) -> list[str]:
        return [m.content for m in self.messages]


def make_channel(screen: Screen, kind: type, channel_id: int = 42, **attrs: Any) -> MagicMock:
    channel = MagicMock(spec=kind)
    channel.id = channel_id
    for name, value in attrs.items():
        setattr(channel, name, value)
    sent_by_id: dict[int, MagicMock] = {}

    async def send(content: str, **kwargs: Any) -> MagicMock:
        assert kwargs["allowed_mentions"].everyone is False and kwargs["allowed_mentions"].users is False
        assert len(content) <= 2000
        sent = MagicMock(spec=discord.Message)
        sent.id = 1000 + len(screen.messages)
        sent.content = content
        sent.kwargs = kwargs
        sent_by_id[sent.id] = sent

        async def edit(*, content: str, allowed_mentions: discord.AllowedMentions) -> None:
            assert allowed_mentions.everyone is False and len(content) <= 2000
            screen.events.append(f"edit {channel_id}")
            if screen.clock is not None:
                screen.edit_times.append(screen.clock.monotonic())
            sent.content = content

        async def delete() -> None:
            screen.events.append(f"delete {channel_id}")
            screen.messages.remove(sent)

        sent.edit = AsyncMock(side_effect=edit)
        sent.delete = AsyncMock(side_effect=delete)
        screen.events.append(f"send {channel_id}")
        screen.messages.append(sent)
        return sent

    channel.send = AsyncMock(side_effect=send)
    channel.get_partial_message = MagicMock(side_effect=lambda message_id: sent_by_id[message_id])
    typing = MagicMock()

    async def enter(*args: object) -> None:
        screen.events.append(f"typing {channel_id}")

    async def leave(*exc: object) -> bool:
        screen.events.append(f"typed {channel_id}")
        return False

    typing.__aenter__ = AsyncMock(side_effect=enter)
    typing.__aexit__ = AsyncMock(side_effect=leave)
    channel.typing = MagicMock(return_value=typing)
    return channel


def make_message(
    content: str,
    channel: MagicMock,
    *,
    author: int = 7,
    bot: bool = False,
    guild: int | None = GUILD,
    mentions: tuple[int, ...] = (),
    thread: MagicMock | None = None,
) -> MagicMock:
    message = MagicMock(spec=discord.Message)
    message.content = content
    message.type = discord.MessageType.default
    message.channel = channel
    message.author = MagicMock(id=author, bot=bot)
    message.raw_mentions = list(mentions)
    message.mention_everyone = False
    message.guild = MagicMock(id=guild) if guild is not None else None
    message.create_thread = AsyncMock(return_value=thread)
    return message


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def responder_for(ctx: FakeContext | None) -> Responder:
    async def contexts() -> Any:
        return ctx

    return Responder(contexts=contexts, clock=ctx.apps.clock if ctx else VirtualClock())


# -- when to answer -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "attrs", "message_kw", "expected"),
    [
        (discord.DMChannel, {}, {}, Trigger.DIRECT),
        (discord.TextChannel, {}, {"mentions": (ME,)}, Trigger.MENTION),
        (discord.TextChannel, {}, {}, None),  # an ordinary channel message
        (discord.TextChannel, {}, {"mentions": (5,)}, None),  # someone else mentioned
        (discord.Thread, {"owner_id": ME}, {}, Trigger.THREAD),  # a thread the bot started
        (discord.Thread, {"owner_id": 5}, {}, None),  # somebody else's thread
        (discord.Thread, {"owner_id": 5}, {"mentions": (ME,)}, Trigger.MENTION),
        (discord.DMChannel, {}, {"bot": True}, None),  # bots, this one included, are ignored
        (discord.TextChannel, {}, {"mentions": (ME,), "bot": True}, None),
    ],
)
async def test_the_listener_picks_what_to_answer(
    kind: type, attrs: dict[str, Any], message_kw: dict[str, Any], expected: Trigger | None
) -> None:
    bot = MagicMock()
    bot.user = MagicMock(id=ME)
    responder = MagicMock(spec=Responder)
    responder.respond = AsyncMock()
    message = make_message("hi", make_channel(Screen(), kind, **attrs), **message_kw)
    await Chat(bot, responder).on_message(message)
    if expected is None:
        responder.respond.assert_not_awaited()
    else:
        responder.respond.assert_awaited_once_with(message, expected, ME)


@pytest.mark.parametrize(
    ("kind", "attrs", "message_type", "content"),
    [
        (discord.Thread, {"owner_id": ME}, discord.MessageType.channel_name_change, "a new thread title"),
        (discord.Thread, {"owner_id": ME}, discord.MessageType.recipient_add, ""),
        (discord.Thread, {"owner_id": ME}, discord.MessageType.pins_add, ""),
        (discord.DMChannel, {}, discord.MessageType.pins_add, ""),
    ],
)
async def test_system_messages_are_not_questions(
    kind: type, attrs: dict[str, Any], message_type: discord.MessageType, content: str
) -> None:
    # Renaming the bot's thread, adding someone to it or pinning a message is done by a person
    # (not a bot), but it is no question: no "Ask me something", no Dify call with the new title.
    bot = MagicMock()
    bot.user = MagicMock(id=ME)
    responder = MagicMock(spec=Responder)
    responder.respond = AsyncMock()
    message = make_message(content, make_channel(Screen(), kind, **attrs))
    message.type = message_type
    await Chat(bot, responder).on_message(message)
    responder.respond.assert_not_awaited()


async def test_replies_are_answered() -> None:
    bot = MagicMock()
    bot.user = MagicMock(id=ME)
    responder = MagicMock(spec=Responder)
    responder.respond = AsyncMock()
    message = make_message("and then?", make_channel(Screen(), discord.Thread, owner_id=ME))
    message.type = discord.MessageType.reply
    await Chat(bot, responder).on_message(message)
    responder.respond.assert_awaited_once_with(message, Trigger.THREAD, ME)


async def test_everyone_pings_are_not_mentions() -> None:
    bot = MagicMock()
    bot.user = MagicMock(id=ME)
    responder = MagicMock(spec=Responder)
    message = make_message("@everyone hi", make_channel(Screen(), discord.TextChannel))
    message.mention_everyone = True  # discord.py's mentioned_in() would say yes here
    await Chat(bot, responder).on_message(message)
    responder.respond.assert_not_called()


async def test_nothing_happens_before_the_bot_is_logged_in() -> None:
    bot = MagicMock()
    bot.user = None
    responder = MagicMock(spec=Responder)
    await Chat(bot, responder).on_message(make_message("hi", make_channel(Screen(), discord.DMChannel)))
    responder.respond.assert_not_called()


# -- answering ------------------------------------------------------------------------------------------


async def test_a_mention_starts_a_thread_and_streams_the_answer_there(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(FakeApps(clock), settings())
    thread = make_channel(screen, discord.Thread, channel_id=500)
    channel = make_channel(screen, discord.TextChannel)
    message = make_message(f"<@{ME}> what is   up?", channel, mentions=(ME,), thread=thread)

    answer = await responder_for(ctx).respond(message, Trigger.MENTION, ME)

    assert answer is not None and answer.conversation_id == "conv-1"
    message.create_thread.assert_awaited_once_with(name="what is up?", auto_archive_duration=1440)
    assert ctx.apps.calls == [{"query": "what is   up?", "user": "discord:7", "conversation_key": "discord:1:500"}]
    assert screen.contents() == ["Hello there!"]
    # typing shows in the thread until the first words are shown, then the reply is edited
    assert screen.events[:3] == ["typing 500", "send 500", "typed 500"]
    assert "edit 500" in screen.events
    channel.send.assert_not_called()
    assert "reference" not in screen.messages[0].kwargs  # the thread itself shows what it answers


async def test_without_thread_permission_it_replies_in_the_channel(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(FakeApps(clock), settings())
    channel = make_channel(screen, discord.TextChannel)
    message = make_message(f"<@!{ME}> hi", channel, mentions=(ME,))
    message.create_thread.side_effect = discord.Forbidden(MagicMock(status=403, reason="Forbidden"), "Missing Access")

    await responder_for(ctx).respond(message, Trigger.MENTION, ME)

    assert screen.contents() == ["Hello there!"]
    assert screen.messages[0].kwargs["reference"] is message
    assert screen.messages[0].kwargs["mention_author"] is False
    assert ctx.apps.calls[0]["conversation_key"] == "discord:1:42"


async def test_threads_can_be_turned_off(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(FakeApps(clock), settings(bot_threads=False))
    message = make_message(f"<@{ME}> hi", make_channel(screen, discord.TextChannel), mentions=(ME,))
    await responder_for(ctx).respond(message, Trigger.MENTION, ME)
    message.create_thread.assert_not_called()
    assert screen.contents() == ["Hello there!"]


async def test_a_dm_is_answered_in_place_with_the_dm_conversation(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(FakeApps(clock), settings())
    message = make_message("hi", make_channel(screen, discord.DMChannel, channel_id=77), guild=None)
    await responder_for(ctx).respond(message, Trigger.DIRECT, ME)
    assert ctx.apps.calls[0]["conversation_key"] == "discord:dm:77"
    assert screen.messages[0].kwargs["reference"] is message


async def test_a_long_answer_continues_in_new_messages(clock: VirtualClock) -> None:
    screen = Screen()
    words = [f"word{i % 10} " for i in range(830)]
    ctx = FakeContext(FakeApps(clock, chunks=words, step=0.05), settings())
    thread = make_channel(screen, discord.Thread, channel_id=500, owner_id=ME)
    await responder_for(ctx).respond(make_message("more", thread), Trigger.THREAD, ME)
    contents = screen.contents()
    assert len(contents) == 3 and all(len(c) <= 2000 for c in contents)
    assert " ".join(contents).split() == "".join(words).split()


async def test_edits_are_throttled_on_the_injected_clock(clock: VirtualClock) -> None:
    screen = Screen(clock=clock)
    ctx = FakeContext(FakeApps(clock, chunks=[f"w{i} " for i in range(20)], step=0.25), settings(edit_interval=1.0))
    thread = make_channel(screen, discord.Thread, channel_id=500, owner_id=ME)
    await responder_for(ctx).respond(make_message("go", thread), Trigger.THREAD, ME)
    # Words arrive every 0.25 s for 5 s: the first goes out at once, then one edit a second, then the
    # final full edit once the throttle allows it.
    assert screen.events.count("send 500") == 1
    assert screen.edit_times == [1.25, 2.25, 3.25, 4.25, 5.25]
    assert screen.contents() == ["".join(f"w{i} " for i in range(20)).rstrip()]


async def test_reset_forgets_the_channel_conversation(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(FakeApps(clock), settings(reset_command="forget"))
    channel = make_channel(screen, discord.TextChannel)
    await responder_for(ctx).respond(make_message(f"<@{ME}> /forget", channel, mentions=(ME,)), Trigger.MENTION, ME)
    assert ctx.apps.resets == ["discord:1:42|discord:7"] and not ctx.apps.calls  # only the author's own
    assert screen.contents() == [RESET_DONE]


async def test_a_bare_mention_asks_for_a_question(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(FakeApps(clock), settings())
    channel = make_channel(screen, discord.TextChannel)
    await responder_for(ctx).respond(make_message(f"<@{ME}>", channel, mentions=(ME,)), Trigger.MENTION, ME)
    assert screen.contents() == [EMPTY_PROMPT] and not ctx.apps.calls


async def test_a_dify_failure_shows_a_short_message_after_the_partial_answer(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(FakeApps(clock, error="Dify rejected the request (quota)"), settings())
    thread = make_channel(screen, discord.Thread, channel_id=500, owner_id=ME)
    answer = await responder_for(ctx).respond(make_message("go", thread), Trigger.THREAD, ME)
    assert answer is None
    [shown] = screen.contents()
    assert shown.startswith("Hello there!") and shown.endswith(
        "*⚠️ The answer was cut short (upstream_error). Please ask again.*"
    )
    assert screen.events.count("typed 500") == 1


async def test_an_empty_answer_says_so(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(FakeApps(clock, chunks=[]), settings())
    thread = make_channel(screen, discord.Thread, channel_id=500, owner_id=ME)
    await responder_for(ctx).respond(make_message("go", thread), Trigger.THREAD, ME)
    assert screen.contents() == ["*(The assistant returned an empty answer.)*"]


async def test_a_disabled_endpoint_answers_nothing() -> None:
    screen = Screen()
    message = make_message("hi", make_channel(screen, discord.DMChannel))
    assert await responder_for(None).respond(message, Trigger.DIRECT, ME) is None
    assert not screen.events


async def test_a_shrinking_answer_deletes_messages_it_no_longer_needs(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(ReplacedAnswer(clock, chunks=["x " * 1500, "short now"]), settings())  # e.g. moderation
    thread = make_channel(screen, discord.Thread, channel_id=500, owner_id=ME)
    await responder_for(ctx).respond(make_message("go", thread), Trigger.THREAD, ME)
    assert screen.events.count("send 500") == 2 and "delete 500" in screen.events
    assert screen.contents() == ["short now"]


class ReplacedStream(ScriptedStream):
    async def deltas(self) -> AsyncIterator[Delta]:
        long, short = self._chunks
        self.answer = Answer(text=short, app="a", mode="chat")
        yield Delta("text", long)
        await self._clock.sleep(2.0)
        yield Delta("replace", short)


class ReplacedAnswer(FakeApps):
    def stream(self, query: str, **kwargs: Any) -> ScriptedStream:
        return ReplacedStream(self.chunks, self.clock, self.step, self.error)


class RefusedStream(ScriptedStream):
    async def __aenter__(self) -> ScriptedStream:
        raise Overloaded("full", retry_after=5)


class OverloadedOnce(FakeApps):
    """The gateway is full for the first try, then answers."""

    def stream(self, query: str, **kwargs: Any) -> ScriptedStream:
        if not self.calls:
            self.calls.append({"query": query, **kwargs})
            return RefusedStream(self.chunks, self.clock, self.step, self.error)
        return super().stream(query, **kwargs)


async def test_an_overloaded_gateway_is_asked_again_after_retry_after(clock: VirtualClock) -> None:
    screen = Screen()
    ctx = FakeContext(OverloadedOnce(clock), settings())
    thread = make_channel(screen, discord.Thread, channel_id=500, owner_id=ME)
    started = clock.monotonic()
    answer = await responder_for(ctx).respond(make_message("go", thread), Trigger.THREAD, ME)
    assert answer is not None and screen.contents() == ["Hello there!"]  # no failure note
    assert len(ctx.apps.calls) == 2 and clock.monotonic() - started >= 5


class AlwaysOverloaded(FakeApps):
    def stream(self, query: str, **kwargs: Any) -> ScriptedStream:
        self.calls.append({"query": query, **kwargs})
        return RefusedStream(self.chunks, self.clock, self.step, self.error)


async def test_a_gateway_that_stays_overloaded_is_asked_three_times_then_the_bot_says_it_is_busy(
    clock: VirtualClock,
) -> None:
    screen = Screen()
    ctx = FakeContext(AlwaysOverloaded(clock), settings())
    thread = make_channel(screen, discord.Thread, channel_id=500, owner_id=ME)
    answer = await responder_for(ctx).respond(make_message("go", thread), Trigger.THREAD, ME)
    assert answer is None and len(ctx.apps.calls) == 3 and clock.monotonic() >= 10  # Retry-After apart
    assert screen.contents() == ["*⚠️ Sorry, no answer could be given (busy). Please try again in a moment.*"]
    assert screen.events == ["typing 500", "typed 500", "send 500"]  # "typing…" while it waited
