"""/ask and /reset end to end: the gateway, the Dify simulator and a fake Discord API, each on a real
uvicorn; interactions signed with PyNaCl as Discord signs them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import httpx
import pytest
from nacl.signing import SigningKey

from endpoints.discord.rendering import CONTINUED_NOTE, LATE_NOTE
from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.discord_interactions import APPLICATION_ID, command, new_key, public_key_hex, signed_headers
from tests.support.fake_discord import FakeDiscord
from tests.support.gateway import admin_headers, live_app, live_server, make_settings

pytestmark = [pytest.mark.anyio, pytest.mark.live]

QUESTION = " ".join(f"w{i}" for i in range(40))
LONG_ANSWER = " ".join(f"word{i % 10}" for i in range(830))  # about 5,000 characters


@dataclass
class Stack:
    client: httpx.AsyncClient
    url: str
    endpoint_id: str
    key: SigningKey
    fake: FakeDiscord
    simulator: str

    async def interact(self, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        return await self.client.post(self.url, content=body, headers=signed_headers(self.key, body))

    async def ask(self, question: str, **kwargs: Any) -> tuple[str, httpx.Response]:
        payload = command("ask", question, **kwargs)
        return payload["token"], await self.interact(payload)

    async def answered(self, token: str, ending: str) -> list[str]:
        """Wait until the interaction's last message ends with `ending`; its messages."""
        await self.fake.wait_for(
            lambda: bool(self.fake.visible(token)) and self.fake.visible(token)[-1].endswith(ending)
        )
        return self.fake.visible(token)

    async def sim_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.client.get(f"{self.simulator}/_sim/stats")).json()
        return stats


@contextlib.asynccontextmanager
async def discord_stack(
    tmp_path: Path, config: SimulatorConfig | None = None, fake: FakeDiscord | None = None, **settings: Any
) -> AsyncIterator[Stack]:
    config = config or SimulatorConfig(first_token_latency=0.02, tokens_per_second=80)
    fake = fake or FakeDiscord()
    key = new_key()
    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_server(fake.app()) as discord_base,
        live_app(lambda url: create_app(make_settings(tmp_path, public_url=url))) as gateway,
        httpx.AsyncClient(timeout=30) as client,
    ):
        admin = f"{gateway}/admin/api"
        app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": config.mode}
        assert (await client.post(f"{admin}/apps", json=app, headers=admin_headers())).status_code == 201
        values = {
            "application_id": APPLICATION_ID,
            "public_key": public_key_hex(key),
            "api_base_url": f"{discord_base}/api/v10",
            "edit_interval": 0.05,
            **settings,
        }
        created = await client.post(
            f"{admin}/endpoints",
            json={"plugin": "discord", "apps": ["support"], "settings": values},
            headers=admin_headers(),
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        assert "Interactions Endpoint URL" in endpoint["hint"]
        yield Stack(client, endpoint["url"], endpoint["id"], key, fake, simulator)


async def test_ask_defers_then_streams_by_editing_the_original(tmp_path: Path) -> None:
    async with discord_stack(tmp_path) as stack:
        token, response = await stack.ask(QUESTION)
        assert response.status_code == 200
        assert response.json() == {"type": 5}
        answer = f"You said: {QUESTION}"
        assert await stack.answered(token, answer) == [answer]

        edits = [c.json["content"] for c in stack.fake.matching("PATCH", f"/{token}/messages/@original")]
        assert len(edits) >= 3, edits  # streamed, not sent once at the end
        assert edits[-1] == answer
        assert all(answer.startswith(edit) for edit in edits)  # each edit shows more of the answer
        assert len(set(edits)) == len(edits)  # no edit repeats what is shown
        assert not stack.fake.matching("POST", "/webhooks/")  # short answers need no follow-up


class QueryInput(TypedDict, total=False):
    query_input: str


@pytest.mark.parametrize("setting", [{}, {"query_input": "question"}], ids=["app-default", "setting"])
async def test_a_workflow_app_gets_the_question_in_its_own_input(tmp_path: Path, setting: QueryInput) -> None:
    form = (("question", "text-input", True), ("context", "paragraph", False))
    config = SimulatorConfig(mode="workflow", inputs=form, first_token_latency=0, tokens_per_second=0)
    async with discord_stack(tmp_path, config, **setting) as stack:
        token, _ = await stack.ask(QUESTION)
        assert await stack.answered(token, f"You said: {QUESTION}") == [f"You said: {QUESTION}"]
        [run] = [r["body"] for r in (await stack.sim_stats())["recent_requests"] if r["path"].endswith("/run")]
    assert run["inputs"] == {"question": QUESTION}


async def test_a_5000_character_answer_continues_in_follow_ups(tmp_path: Path) -> None:
    config = SimulatorConfig(answer=LONG_ANSWER, first_token_latency=0.02, tokens_per_second=1500)
    async with discord_stack(tmp_path, config) as stack:
        token, response = await stack.ask("tell me everything")
        assert response.json() == {"type": 5}
        # Until the last words are shown (the final edit may land a moment after the length is near).
        await stack.fake.wait_for(lambda: " ".join(stack.fake.visible(token)).split() == LONG_ANSWER.split())
        messages = stack.fake.visible(token)
        assert len(messages) == 3
        assert all(len(m) <= 2000 for m in messages)
        assert " ".join(messages).split() == LONG_ANSWER.split()  # nothing lost, nothing cut mid-word
        assert len(stack.fake.matching("POST", f"/webhooks/{APPLICATION_ID}/{token}")) == 2


async def test_one_conversation_per_channel_and_user_until_reset(tmp_path: Path) -> None:
    async with discord_stack(tmp_path) as stack:
        for question in ("one", "two"):
            token, _ = await stack.ask(question)
            await stack.answered(token, f"You said: {question}")
        assert (await stack.sim_stats())["conversations"] == 1

        token, _ = await stack.ask("other user", user="8")
        await stack.answered(token, "You said: other user")
        token, _ = await stack.ask("other channel", channel="43")
        await stack.answered(token, "You said: other channel")
        token, _ = await stack.ask("in a DM", guild=None)
        await stack.answered(token, "You said: in a DM")
        assert (await stack.sim_stats())["conversations"] == 4

        reset = await stack.interact(command("reset"))
        assert reset.status_code == 200
        assert reset.json()["type"] == 4 and reset.json()["data"]["flags"] == 64
        token, _ = await stack.ask("three")
        await stack.answered(token, "You said: three")
        assert (await stack.sim_stats())["conversations"] == 5


async def test_a_repeated_interaction_is_answered_once(tmp_path: Path) -> None:
    async with discord_stack(tmp_path) as stack:
        payload = command("ask", "once")
        first, second = await stack.interact(payload), await stack.interact(payload)
        assert first.json() == second.json() == {"type": 5}
        await stack.answered(payload["token"], "You said: once")
        assert (await stack.sim_stats())["generation_requests"] == 1


@pytest.mark.parametrize("fault", ["400", "error-midstream"])
async def test_a_dify_failure_shows_a_short_readable_message(tmp_path: Path, fault: str) -> None:
    async with discord_stack(tmp_path) as stack:
        token, _ = await stack.ask(f"please fail [[fault:{fault}]] now with several words")
        await stack.fake.wait_for(lambda: any("⚠️" in m for m in stack.fake.visible(token)))
        [shown] = stack.fake.visible(token)
        note = shown.splitlines()[-1]
        assert note.startswith("*⚠️ ") and note.endswith(".*") and "(" in note and len(note) < 200
        if fault == "error-midstream":
            assert shown.startswith("You said:")  # the part already shown stays


async def test_429_on_edits_is_honoured(tmp_path: Path) -> None:
    fake = FakeDiscord(limit_original=3, retry_after=0.3)
    async with discord_stack(tmp_path, fake=fake) as stack:
        token, _ = await stack.ask(QUESTION)
        answer = f"You said: {QUESTION}"
        assert await stack.answered(token, answer) == [answer]
        edits = stack.fake.matching("PATCH", f"/{token}/messages/@original")
        assert [c.status for c in edits[:3]] == [429, 429, 429]
        for limited, after in zip(edits, edits[1:], strict=False):
            if limited.status == 429:  # the next try waited at least retry_after
                assert after.at - limited.at >= 0.29


async def test_past_the_token_deadline_the_answer_finishes_as_a_channel_message(tmp_path: Path) -> None:
    config = SimulatorConfig(answer=LONG_ANSWER[:1200], first_token_latency=0.02, tokens_per_second=200)
    async with discord_stack(tmp_path, config, bot_token=FakeDiscord.bot_token, token_deadline=0.4) as stack:
        token, _ = await stack.ask("a slow one")
        await stack.fake.wait_for(
            lambda: (
                " ".join([*stack.fake.visible(token), *stack.fake.channel("42")]).split() == LONG_ANSWER[:1200].split()
            )
        )
        webhook, channel = stack.fake.visible(token), stack.fake.channel("42")
        assert webhook and channel
        webhook_calls = [c for c in stack.fake.calls if "/webhooks/" in c.path]
        channel_calls = [c for c in stack.fake.calls if "/channels/" in c.path]
        # The token is not used once the answer has moved to the channel, and the bot token is.
        assert max(c.at for c in webhook_calls) <= min(c.at for c in channel_calls)
        assert all(c.authorization == f"Bot {FakeDiscord.bot_token}" for c in channel_calls)
        assert all(c.authorization is None for c in webhook_calls)


async def test_past_the_token_deadline_without_a_bot_token_the_answer_ends_with_a_note(tmp_path: Path) -> None:
    config = SimulatorConfig(answer=LONG_ANSWER[:1200], first_token_latency=0.02, tokens_per_second=200)
    async with discord_stack(tmp_path, config, token_deadline=0.4) as stack:
        token, _ = await stack.ask("a slow one")
        messages = await stack.answered(token, LATE_NOTE)
        assert len(" ".join(messages)) < 1200  # cut short
        assert not stack.fake.channel("42")
        await stack.fake.wait_for(lambda: True)
        stats = await stack.sim_stats()
        assert stats["streams_completed"] == 0  # the Dify task was stopped, not read to the end


async def test_a_deadline_before_the_first_words_continues_below(tmp_path: Path) -> None:
    config = SimulatorConfig(first_token_latency=0.5, tokens_per_second=200)
    async with discord_stack(tmp_path, config, bot_token=FakeDiscord.bot_token, token_deadline=0.2) as stack:
        token, _ = await stack.ask("late start")
        await stack.fake.wait_for(lambda: stack.fake.channel("42") == ["You said: late start"])
        assert stack.fake.visible(token) == [CONTINUED_NOTE]


async def test_register_commands_action(tmp_path: Path) -> None:
    async with discord_stack(tmp_path, bot_token=FakeDiscord.bot_token, ask_command="question") as stack:
        action = f"{stack.url.split('/e/')[0]}/admin/api/endpoints/{stack.endpoint_id}/actions/register-commands"
        response = await stack.client.post(action, json={"args": {"guild": "555555"}}, headers=admin_headers())
        assert response.status_code == 200, response.text
        assert "Registered 2 commands in guild 555555" in str(response.json())
        [put] = stack.fake.matching("PUT", f"/applications/{APPLICATION_ID}/guilds/555555/commands")
        assert [c["name"] for c in put.json] == ["question", "reset"]
        assert put.json[0]["options"][0]["name"] == "question" and put.json[0]["options"][0]["required"] is True
        assert put.authorization == f"Bot {FakeDiscord.bot_token}"

        response = await stack.client.post(action, json={"args": {}}, headers=admin_headers())
        [put] = stack.fake.matching("PUT", f"/applications/{APPLICATION_ID}/commands")
        assert all(c["contexts"] == [0, 1, 2] for c in put.json)  # global commands also work in DMs

        bad = await stack.client.post(action, json={"args": {"guild": "x/../y"}}, headers=admin_headers())
        assert bad.status_code == 400


@pytest.mark.parametrize("question", ["too late", "too late and failing [[fault:400]]"])
async def test_an_answer_discord_refuses_is_dead_lettered_without_leaking_the_token(
    tmp_path: Path, question: str
) -> None:
    async with discord_stack(tmp_path) as stack:
        payload = command("ask", question)
        stack.fake.expired_tokens.add(payload["token"])
        assert (await stack.interact(payload)).json() == {"type": 5}
        admin = f"{stack.url.split('/e/')[0]}/admin/api"
        for _ in range(300):
            dead = (await stack.client.get(f"{admin}/jobs", params={"state": "dead"}, headers=admin_headers())).json()
            if dead["jobs"]:
                break
            await asyncio.sleep(0.02)
        [job] = dead["jobs"]
        assert "Discord refused the answer" in job["last_error"] and "401" in job["last_error"]
        assert payload["token"] not in job["last_error"]


async def test_register_commands_needs_a_working_bot_token(tmp_path: Path) -> None:
    async with discord_stack(tmp_path) as stack:
        action = f"{stack.url.split('/e/')[0]}/admin/api/endpoints/{stack.endpoint_id}/actions/register-commands"
        missing = await stack.client.post(action, json={"args": {}}, headers=admin_headers())
        assert missing.status_code == 400 and "bot_token" in missing.text
        update = f"{stack.url.split('/e/')[0]}/admin/api/endpoints/{stack.endpoint_id}"
        changed = await stack.client.patch(update, json={"settings": {"bot_token": "wrong"}}, headers=admin_headers())
        assert changed.status_code == 200, changed.text
        refused = await stack.client.post(action, json={"args": {}}, headers=admin_headers())
        assert refused.status_code == 502
        assert "check bot_token and application_id" in refused.json()["error"]["message"]
