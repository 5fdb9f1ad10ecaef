"""The `ask` job run again for the same job id (the gateway reruns a job whose lease expired after
a crash): it edits the follow-ups the earlier attempt posted instead of posting them again.

The job handler is called directly, against the Dify simulator and the fake Discord API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from endpoints.discord.plugin import ask, plugin
from gateway.host.runtime import Gateway
from gateway.plugin import Context, JobInfo
from gateway.records.apps import AppIn, AppUpdate
from gateway.records.endpoints import EndpointRecord
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.discord_interactions import APPLICATION_ID, new_key, public_key_hex
from tests.support.fake_discord import FakeDiscord
from tests.support.gateway import live_server, make_settings, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.live]

LONG_ANSWER = " ".join(f"word{i % 10}" for i in range(830))  # about 5,000 characters: 3 messages
TOKEN = "interaction-token-rerun"
CHANNEL = "42"


@dataclass
class Setup:
    gateway: Gateway
    record: EndpointRecord
    fake: FakeDiscord
    echo: str  # a second simulator, answering "You said: …"

    async def context(self) -> Context:
        return await self.gateway.contexts.build(self.record, plugin)

    def posts(self, where: str = "webhook") -> int:
        """Messages created: follow-ups of the interaction, or (`channel`) messages in its channel."""
        path = f"/webhooks/{APPLICATION_ID}/{TOKEN}" if where == "webhook" else f"/channels/{CHANNEL}/messages"
        return sum(1 for c in self.fake.calls if c.method == "POST" and c.path.endswith(path) and c.status < 400)

    def ids(self, where: str = "webhook") -> list[str]:
        """Ids of the follow-ups (or channel messages) on screen, in order."""
        place = f"webhook:{TOKEN}" if where == "webhook" else f"channel:{CHANNEL}"
        return [key for key, m in self.fake.messages.items() if m.where == place and not key.startswith("original:")]

    def edited(self, message_id: str) -> int:
        return sum(1 for c in self.fake.matching("PATCH", f"/messages/{message_id}") if c.status < 400)


@contextlib.asynccontextmanager
async def setup(tmp_path: Path, tokens_per_second: float = 1500, **settings: Any) -> AsyncIterator[Setup]:
    fake = FakeDiscord()
    config = SimulatorConfig(answer=LONG_ANSWER, first_token_latency=0.02, tokens_per_second=tokens_per_second)
    echo = SimulatorConfig(first_token_latency=0.02, tokens_per_second=1500)
    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_server(create_simulator_app(echo)) as echo_simulator,
        live_server(fake.app()) as discord_base,
        running_app(make_settings(tmp_path), run_workers=False) as running,
    ):
        gw = running.gateway
        app = AppIn(name="support", base_url=f"{simulator}/v1", api_key=SecretStr("app-simulator"), mode="chat")
        await gw.apps.add(app)
        values = {
            "application_id": APPLICATION_ID,
            "public_key": public_key_hex(new_key()),
            "api_base_url": f"{discord_base}/api/v10",
            "edit_interval": 0.05,
            **settings,
        }
        record, _ = await gw.endpoints.create("discord", ["support"], values)
        yield Setup(gw, record, fake, f"{echo_simulator}/v1")


def job(attempt: int, received_at: float | None = None) -> JobInfo:
    interaction_id = "1200000000000000777"
    payload = {
        "id": interaction_id,
        "token": TOKEN,
        "application_id": APPLICATION_ID,
        "guild_id": "1",
        "channel_id": CHANNEL,
        "user_id": "7",
        "question": "tell me everything",
        "received_at": time.time() if received_at is None else received_at,
    }
    return JobInfo("job_rerun", "ask", payload, attempt, interaction_id)


def assert_whole_answer(messages: list[str], count: int = 3) -> None:
    assert len(messages) == count
    assert all(len(m) <= 2000 for m in messages)
    assert " ".join(messages).split() == LONG_ANSWER.split()


async def test_a_second_run_edits_the_follow_ups_instead_of_posting_new_ones(tmp_path: Path) -> None:
    async with setup(tmp_path) as s:
        first = await ask(job(1), await s.context())
        assert first["status"] == "answered"
        assert_whole_answer(s.fake.visible(TOKEN))
        follow_ups = s.ids()
        assert s.posts() == len(follow_ups) == 2
        edits = {i: s.edited(i) for i in follow_ups}

        second = await ask(job(2), await s.context())

        assert second["status"] == "answered"
        assert s.posts() == 2  # no new follow-up message: the rerun edited the first run's
        assert s.ids() == follow_ups
        assert all(s.edited(i) > edits[i] for i in follow_ups)
        assert_whole_answer(s.fake.visible(TOKEN))


async def test_a_run_killed_midway_is_finished_by_the_rerun_without_duplicates(tmp_path: Path) -> None:
    async with setup(tmp_path) as s:
        ctx = await s.context()
        crashed = asyncio.ensure_future(ask(job(1), ctx))  # `plugin.job` types `ask` as an Awaitable
        await s.fake.wait_for(lambda: s.posts() >= 1)
        # Die once the follow-up is recorded. (A crash between Discord's answer and the record
        # would repost that one message: at-least-once, in a window of one round trip.)
        while not await ctx.storage.get("posted:job_rerun:webhook"):  # noqa: ASYNC110 - polling the store is the point
            await asyncio.sleep(0.001)
        crashed.cancel()  # the process dies with one follow-up posted
        with contextlib.suppress(asyncio.CancelledError):
            await crashed
        [first_follow_up] = s.ids()

        await ask(job(2), await s.context())

        assert s.posts() == 2
        assert s.ids()[0] == first_follow_up and s.edited(first_follow_up) >= 1
        assert_whole_answer(s.fake.visible(TOKEN))


async def test_a_shorter_rerun_deletes_the_follow_ups_it_no_longer_needs(tmp_path: Path) -> None:
    async with setup(tmp_path) as s:
        await ask(job(1), await s.context())
        left_over = s.ids()
        assert len(left_over) == 2
        # A rerun asks Dify again, and this time the answer fits in one message.
        await s.gateway.apps.update(
            "support", AppUpdate(base_url=s.echo, api_key=SecretStr("app-simulator"), mode="chat")
        )

        await ask(job(2), await s.context())

        assert s.fake.visible(TOKEN) == ["You said: tell me everything"]
        assert s.posts() == 2  # none new
        assert [c.path.rsplit("/", 1)[1] for c in s.fake.matching("DELETE", "/messages/")] == left_over[::-1]


async def test_a_rerun_past_the_token_deadline_edits_its_channel_messages(tmp_path: Path) -> None:
    bot = {"bot_token": FakeDiscord.bot_token, "token_deadline": 0.3}
    async with setup(tmp_path, tokens_per_second=400, **bot) as s:
        received = time.time()
        first = await ask(job(1, received), await s.context())
        assert first["channel"] is True
        channel = s.ids("channel")
        assert channel and s.posts("channel") == len(channel)

        await ask(job(2, received), await s.context())

        assert s.posts("channel") == len(channel)  # none new
        assert s.ids("channel") == channel
        assert " ".join(s.fake.channel(CHANNEL)).split() == LONG_ANSWER.split()
