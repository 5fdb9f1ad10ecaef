"""An /ask answer through the chat-delivery engine with Discord's adapters: the fake Discord API in
process (httpx.ASGITransport), a scripted answer and a virtual clock. The fence passed to the engine
runs before every write, so it tells when each write was made."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from endpoints.discord.api import DiscordAPI
from endpoints.discord.messages import DiscordMessages
from endpoints.discord.plugin import ask
from endpoints.discord.rendering import CONTINUED_NOTE, EMPTY_ANSWER, LATE_NOTE, chat_rules
from endpoints.discord.settings import DiscordSettings
from gateway.dify.models import Delta
from gateway.exceptions import JobError, Overloaded, RetryJob, UpstreamError
from gateway.plugin import Delivered, Handover, JobInfo, MemoryMessages, PostedMessages, StoredMessages, deliver
from tests.gateway.delivery.chat_fakes import FakeAnswer, JobStorage, VirtualClock, text
from tests.support.discord_interactions import APPLICATION_ID, new_key, public_key_hex
from tests.support.fake_discord import FakeDiscord

pytestmark = pytest.mark.anyio

TOKEN = "interaction-token"
CHANNEL = "42"
FENCE = "```"
LONG = " ".join(f"word{i % 10}" for i in range(500))  # about 3,000 characters: two messages


@dataclass
class Discord:
    fake: FakeDiscord
    http: httpx.AsyncClient
    clock: VirtualClock = field(default_factory=VirtualClock)
    writes: list[float] = field(default_factory=list)  # when each write was made (virtual seconds)

    def api(self, bot_token: str | None = None) -> DiscordAPI:
        return DiscordAPI(self.http, "http://discord.test/api/v10", clock=self.clock, bot_token=bot_token)

    async def fence(self) -> None:
        self.writes.append(self.clock.monotonic())

    async def ask(
        self,
        answer: FakeAnswer,
        *,
        expires_in: float | None = None,
        bot: bool = False,
        posted: PostedMessages | None = None,
    ) -> Delivered:
        """What the `ask` job does, with `expires_in` seconds left on the interaction token."""
        api = self.api(FakeDiscord.bot_token if bot else None)
        expires_at = None if expires_in is None else self.clock.time() + expires_in
        webhook = DiscordMessages.interaction(api, chat_rules(1.0, expires_at=expires_at), APPLICATION_ID, TOKEN)
        handover = Handover(DiscordMessages.channel(api, chat_rules(1.0), CHANNEL), MemoryMessages()) if bot else None
        return await deliver(
            answer,
            webhook,
            clock=self.clock,
            posted=posted or MemoryMessages(),
            fence=self.fence,
            handover=handover,
        )

    def webhook_calls(self) -> list[tuple[str, str]]:
        return [(c.method, c.path.rsplit("/", 1)[-1]) for c in self.fake.calls if TOKEN in c.path]


@contextlib.asynccontextmanager
async def discord() -> AsyncIterator[Discord]:
    fake = FakeDiscord()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app())) as http:
        yield Discord(fake, http)


# -- the interaction's messages -------------------------------------------------------------------


async def test_the_deferred_response_shows_the_first_page_and_follow_ups_the_rest() -> None:
    async with discord() as d:
        chunks = [LONG[i : i + 100] for i in range(0, len(LONG), 100)]
        done = await d.ask(FakeAnswer(d.clock, text(*chunks, delay=0.3)))

        pages = d.fake.visible(TOKEN)
        assert len(pages) == 2 == done.messages and all(len(p) <= 2000 for p in pages)
        assert " ".join(pages).split() == LONG.split()
        assert d.webhook_calls()[0] == ("PATCH", "@original")  # the "thinking…" response is used first
        assert [c.method for c in d.fake.calls].count("POST") == 1


async def test_a_replaced_answer_deletes_the_follow_ups_it_no_longer_needs() -> None:
    async with discord() as d:
        steps = [(0.0, Delta("text", LONG)), (2.0, Delta("replace", "Sorry, I can't answer that."))]
        await d.ask(FakeAnswer(d.clock, steps))

        assert d.fake.visible(TOKEN) == ["Sorry, I can't answer that."]
        assert [m for m, _ in d.webhook_calls()] == ["PATCH", "POST", "PATCH", "DELETE"]


async def test_edits_are_paced_and_the_whole_answer_lands() -> None:
    async with discord() as d:
        chunks = [f"w{i} " for i in range(40)]
        await d.ask(FakeAnswer(d.clock, text(*chunks, delay=0.1)))

        gaps = [b - a for a, b in zip(d.writes, d.writes[1:], strict=False)]
        assert len(d.writes) <= 6 and all(gap >= 1.0 - 1e-9 for gap in gaps), d.writes  # 40 deltas over 4 s
        assert d.fake.visible(TOKEN) == ["".join(chunks).strip()]


async def test_a_429_is_waited_out_and_the_same_edit_made_again() -> None:
    async with discord() as d:
        d.fake.limit_original, d.fake.retry_after = 1, 2.0
        await d.ask(FakeAnswer(d.clock, text("Hello")))

        limited, edited = d.fake.matching("PATCH", "@original")
        assert (limited.status, edited.status) == (429, 200) and limited.json == edited.json
        assert d.writes[1] - d.writes[0] >= 2.0  # Discord's retry_after, on the clock
        assert d.fake.visible(TOKEN) == ["Hello"]


async def test_an_empty_answer_says_so() -> None:
    async with discord() as d:
        await d.ask(FakeAnswer(d.clock, [(0.0, Delta("ping"))]))
        assert d.fake.visible(TOKEN) == [EMPTY_ANSWER]


@pytest.mark.parametrize("partial", ["", "Partial answer"])
async def test_a_dify_failure_ends_with_a_short_readable_note(partial: str) -> None:
    async with discord() as d:
        failure = UpstreamError("upstream\n  said   no " + "x" * 5000)
        done = await d.ask(FakeAnswer(d.clock, text(partial) if partial else [], fail=failure))

        [shown] = d.fake.visible(TOKEN)
        note = shown.splitlines()[-1]
        assert note.startswith("*⚠️ ") and "(upstream_error)" in note and "said no" not in note
        assert shown.startswith(partial) and done.failure is failure


# -- a rerun of the job ----------------------------------------------------------------------------


async def test_a_rerun_edits_the_follow_ups_it_posted_and_deletes_leftovers_at_the_end() -> None:
    async with discord() as d:
        storage, lease = JobStorage(), object()

        def posted() -> StoredMessages[object]:
            return StoredMessages(storage, "posted:job_1:webhook", fence=lease)

        await d.ask(FakeAnswer(d.clock, text(LONG)), posted=posted())
        [follow_up] = [key for key, m in d.fake.messages.items() if not key.startswith("original:")]
        d.fake.calls.clear()

        await d.ask(FakeAnswer(d.clock, text("short", " answer", delay=2.0)), posted=posted())

        assert d.webhook_calls() == [("PATCH", "@original"), ("PATCH", "@original"), ("DELETE", follow_up)]
        assert d.fake.visible(TOKEN) == ["short answer"]
        assert await posted().load() == []
        assert storage.fences and all(fence is lease for fence in storage.fences)  # fenced by the job's lease


# -- the interaction token's 15 minutes ------------------------------------------------------------


async def test_past_the_deadline_the_rest_goes_on_in_channel_messages_with_the_bot_token() -> None:
    async with discord() as d:
        steps = [(0.0, Delta("text", f"{FENCE}py\nx = 1")), (11.0, Delta("text", f"\ny = 2\n{FENCE}\nDone"))]
        done = await d.ask(FakeAnswer(d.clock, steps), expires_in=10.0, bot=True)

        assert done.handed_over and not done.cut_off
        [webhook] = d.fake.visible(TOKEN)
        [channel] = d.fake.channel(CHANNEL)
        assert webhook == f"{FENCE}py\nx = 1\n{FENCE}"  # what it showed, the block closed
        assert channel.startswith(f"{FENCE}py\n") and channel.endswith(f"y = 2\n{FENCE}\nDone")  # reopened
        webhook_calls = [i for i, c in enumerate(d.fake.calls) if "/webhooks/" in c.path]
        channel_calls = [i for i, c in enumerate(d.fake.calls) if "/channels/" in c.path]
        assert max(webhook_calls) < min(channel_calls)  # the token is not used once the channel took over
        assert all(d.fake.calls[i].authorization == f"Bot {FakeDiscord.bot_token}" for i in channel_calls)


async def test_a_deadline_before_any_words_leaves_a_pointer_below() -> None:
    async with discord() as d:
        await d.ask(FakeAnswer(d.clock, text("Late words.", delay=11.0)), expires_in=10.0, bot=True)

        assert d.fake.visible(TOKEN) == [CONTINUED_NOTE]
        assert d.fake.channel(CHANNEL) == ["Late words."]


async def test_a_replaced_answer_past_the_deadline_is_finished_whole() -> None:
    async with discord() as d:
        steps = [(0.0, Delta("text", "draft")), (11.0, Delta("replace", "[moderated]"))]
        await d.ask(FakeAnswer(d.clock, steps), expires_in=10.0, bot=True)

        assert d.fake.visible(TOKEN) == ["[moderated]"]
        assert d.fake.channel(CHANNEL) == []


async def test_without_a_bot_token_the_answer_ends_with_a_note_and_is_read_no_further() -> None:
    async with discord() as d:
        answer = FakeAnswer(d.clock, text(*[f"w{i} " for i in range(40)], delay=0.5))
        done = await d.ask(answer, expires_in=10.0)

        assert done.cut_off and answer.read < 40 and answer.closed  # the Dify task is stopped
        [shown] = d.fake.visible(TOKEN)
        assert shown.startswith("w0 w1") and shown.endswith(f"\n\n{LATE_NOTE}")
        assert not d.fake.matching("POST", "/channels/")


async def test_without_a_bot_token_and_no_words_only_the_note() -> None:
    async with discord() as d:
        steps = [(11.0, Delta("ping")), (0.5, Delta("text", "too late"))]
        await d.ask(FakeAnswer(d.clock, steps), expires_in=10.0)
        assert d.fake.visible(TOKEN) == [LATE_NOTE]


# -- the `ask` job handler ---------------------------------------------------------------------------


@dataclass
class Lease:
    """A run's hold on its job: counts the fence checks."""

    attempt: int = 1
    checks: int = 0

    def held(self) -> bool:
        return True

    async def check(self) -> None:
        self.checks += 1


@dataclass
class Apps:
    answer: FakeAnswer

    def stream(self, query: str, **kwargs: Any) -> FakeAnswer:
        return self.answer


@dataclass
class Context:
    settings: DiscordSettings
    http: httpx.AsyncClient
    clock: VirtualClock
    apps: Apps
    storage: JobStorage = field(default_factory=JobStorage)


def ask_job(lease: Lease) -> JobInfo:
    payload = {
        "id": "777",
        "token": TOKEN,
        "application_id": APPLICATION_ID,
        "guild_id": "1",
        "channel_id": CHANNEL,
        "user_id": "7",
        "question": "q",
        "received_at": VirtualClock().time(),
    }
    return JobInfo("job_1", "ask", payload, 1, "777", lease=lease)


def context(d: Discord, answer: FakeAnswer) -> Context:
    settings = DiscordSettings(
        application_id=APPLICATION_ID,
        public_key=public_key_hex(new_key()),
        api_base_url="http://discord.test/api/v10",
    )
    return Context(settings, d.http, d.clock, Apps(answer))


async def test_the_job_fences_every_write_and_every_record_with_its_lease() -> None:
    async with discord() as d:
        lease, ctx = Lease(), context(d, FakeAnswer(d.clock, text(LONG)))

        result = await ask(ask_job(lease), ctx)  # type: ignore[arg-type]

        assert result == {"status": "answered", "chars": len(LONG), "channel": False}
        assert len(d.fake.visible(TOKEN)) == 2 and lease.checks >= len(d.fake.calls) == 2
        assert list(ctx.storage.data) == ["posted:job_1:webhook"]
        assert ctx.storage.fences == [lease]  # the follow-up, recorded only while the run holds the job


async def test_an_overloaded_gateway_makes_the_job_run_again_later_with_no_note() -> None:
    async with discord() as d:
        ctx = context(d, FakeAnswer(d.clock, fail_on_open=Overloaded("full", retry_after=5.0)))

        with pytest.raises(Overloaded):  # the job runner turns it into a rerun after Retry-After
            await ask(ask_job(Lease()), ctx)  # type: ignore[arg-type]

        assert d.fake.calls == []  # "thinking…" stays until the rerun answers


async def test_discord_failing_through_every_try_runs_the_job_again_but_a_refusal_ends_it() -> None:
    async with discord() as d:
        d.fake.outages.extend(["html"] * 5)  # 502s through all of DiscordAPI's tries
        ctx = context(d, FakeAnswer(d.clock, text("Hello")))
        with pytest.raises(RetryJob):  # may pass later: the rerun edits what it posted
            await ask(ask_job(Lease()), ctx)  # type: ignore[arg-type]

        d.fake.expired_tokens.add(TOKEN)  # a 4xx: a rerun would be refused too
        with pytest.raises(JobError):
            await ask(ask_job(Lease()), ctx)  # type: ignore[arg-type]
