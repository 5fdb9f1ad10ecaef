"""Every surface records what its answers used, and stops at a spent budget in its own shape.

Real parts: uvicorn servers, the Dify simulator (its ledger of reported usage is the truth), the
`openai` client, slack_sdk signatures, PyNaCl-signed Discord interactions, standardwebhooks
verifying the budget callbacks; SQLite and a real Redis under the webhook test.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from base64 import b64encode
from pathlib import Path
from typing import Any

import discord
import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from bots.rendering import Trigger
from gateway.dify.models import Answer
from gateway.exceptions import BudgetExceeded
from gateway.records.apps import AppIn
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.usage.notices import BUDGET_CALLBACK_JOB
from tests.bots.test_chat import ME, FakeApps, FakeContext, Screen, make_channel, make_message, responder_for, settings
from tests.endpoints.discord.test_interactions import discord_stack
from tests.endpoints.openai.stack import openai_stack
from tests.endpoints.slack.conftest import envelope, mention, slack_stack
from tests.gateway.delivery.chat_fakes import VirtualClock
from tests.support.gateway import admin_headers, live_server, make_settings, running_app
from tests.support.webhooks import Receiver, signed_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]

FAST = SimulatorConfig(first_token_latency=0, tokens_per_second=0)
NOTE = "used up its monthly budget (budget_exceeded)"


async def ledger(http: httpx.AsyncClient, simulator: str) -> dict[str, dict[str, Any]]:
    """What the simulator reported, per answer id."""
    stats: dict[str, Any] = (await http.get(f"{simulator}/_sim/stats")).json()
    return dict(stats["usage_by_answer"])


async def usage(http: httpx.AsyncClient, gateway: str, **query: str) -> dict[str, Any]:
    response = await http.get(f"{gateway}/admin/api/usage", params=query, headers=admin_headers())
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def recorded(http: httpx.AsyncClient, gateway: str, answers: int, **query: str) -> dict[str, Any]:
    """The usage report once it counts `answers` (a chat surface may show the last words just
    before the answer's stream closes and its usage is written)."""
    for _ in range(300):
        report = await usage(http, gateway, **query)
        if report["total"]["answers"] >= answers:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"usage never counted {answers} answers: {report}")


async def set_budget(http: httpx.AsyncClient, gateway: str, **budget: Any) -> dict[str, Any]:
    response = await http.put(f"{gateway}/admin/api/budgets", json=budget, headers=admin_headers())
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def tokens(entries: dict[str, dict[str, Any]]) -> int:
    return sum(int(entry["total_tokens"]) for entry in entries.values())


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def test_webhook_usage_budget_and_signed_notices(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    hook_secret = "whsec_" + b64encode(secrets.token_bytes(24)).decode()
    receiver = Receiver(secret=hook_secret)
    async with (
        live_server(create_simulator_app(FAST)) as simulator,
        live_server(receiver.app()) as receiver_base,
        httpx.AsyncClient(timeout=30) as http,
    ):
        store = request.getfixturevalue("redis_db") if backend == "redis" else f"sqlite:///{tmp_path / 'gw.db'}"
        config = make_settings(
            tmp_path,
            store=store,
            budget_callback_url=f"{receiver_base}/hook",
            budget_callback_secret=SecretStr(hook_secret),
            callback_allow_hosts=("127.0.0.1",),
            callback_allow_http=True,
        )
        async with running_app(config) as running:
            gw = running.gateway
            await gw.apps.add(
                AppIn(name="a", base_url=f"{simulator}/v1", api_key=SecretStr("app-simulator"), mode="chat")
            )
            endpoint, url, shown = await gw.endpoints.create_with_secrets("webhook", ["a"], {})

            async def ask(**extra: Any) -> httpx.Response:
                body = json.dumps({"query": "how much is this", "user": "u-42", **extra}).encode()
                return await running.client.post(
                    running.path(url), content=body, headers=signed_headers(shown["secret"], body)
                )

            first = await ask()
            assert first.status_code == 200, first.text
            message_id = first.json()["message_id"]
            reported = await ledger(http, simulator)
            assert list(reported) == [message_id]
            per_answer = reported[message_id]["total_tokens"]
            stored = json.loads(await gw.store.kv_get(f"usage:rec:{message_id}") or "{}")
            assert stored | {"time": 0, "latency": 0} == {
                "key": message_id,
                "workspace": "default",
                "endpoint": endpoint.id,
                "app": "a",
                "plugin": "webhook",
                "user": "u-42",
                "outcome": "ok",
                "time": 0,
                "prompt_tokens": reported[message_id]["prompt_tokens"],
                "completion_tokens": reported[message_id]["completion_tokens"],
                "total_tokens": per_answer,
                "total_price": reported[message_id]["total_price"],
                "currency": "USD",
                "latency": 0,
            }

            budget = await set_budget(
                running.client, "", scope="endpoint", target=endpoint.id, tokens=3 * per_answer, warn_at=0.5
            )
            assert (await ask()).status_code == 200  # 2 of 3: budget.warning
            assert (await ask()).status_code == 200  # 3 of 3: budget.exceeded
            refused = await ask()
            assert refused.status_code == 429
            assert refused.json()["status"] == "failed"
            assert refused.json()["error"]["code"] == "budget_exceeded"
            assert "monthly budget" in refused.json()["error"]["message"]
            streamed = await ask(stream=True)
            assert 'event: error\ndata: {"task_id"' in streamed.text and '"code": "budget_exceeded"' in streamed.text

            await receiver.wait(2)
            kinds = sorted(item["payload"]["type"] for item in receiver.received)
            assert kinds == ["budget.exceeded", "budget.warning"]
            exceeded = next(
                i["payload"]["data"] for i in receiver.received if i["payload"]["type"] == "budget.exceeded"
            )
            assert exceeded == {
                "budget": budget["id"],
                "workspace": "default",
                "scope": "endpoint",
                "target": endpoint.id,
                "period": exceeded["period"],
                "metric": "tokens",
                "limit": 3 * per_answer,
                "used": 3 * per_answer,
            }
            jobs = [job for job in await gw.store.job_list(limit=1000) if job.kind == BUDGET_CALLBACK_JOB]
            assert len(jobs) == 2  # once per budget and month, however many answers crossed it
            assert receiver.rejected == 0

            report = await usage(running.client, "", by="endpoint")
            assert report["total"]["answers"] == 3 == report["rows"][0]["ok"]
            assert report["total"]["total_tokens"] == tokens(await ledger(http, simulator)) == 3 * per_answer


async def test_openai_usage_and_insufficient_quota(tmp_path: Path) -> None:
    async with openai_stack(tmp_path) as stack:
        # The SDK's own retries (max_retries=2) must not retry a spent budget.
        async with stack.client(max_retries=2) as client:
            hi: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi there"}]
            await client.chat.completions.create(model="support", messages=hi)
            chunks = await client.chat.completions.create(model="support", messages=hi, stream=True)
            async for _ in chunks:
                pass
            reported = await ledger(stack.http, stack.simulators["support"])
            report = await recorded(stack.http, stack.gateway, 2, by="app")
            assert report["rows"][0]["app"] == "support" and report["total"]["answers"] == 2 == len(reported)
            assert report["total"]["total_tokens"] == tokens(reported)
            assert report["total"]["cost"] == {"USD": report["total"]["cost"]["USD"]}

            await set_budget(stack.http, stack.gateway, scope="app", target="support", tokens=1)
            with pytest.raises(openai.RateLimitError) as refused:
                await client.chat.completions.create(model="support", messages=hi)
            assert refused.value.code == "insufficient_quota"
            assert refused.value.body == {
                "message": refused.value.body["message"],  # type: ignore[index]
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
            assert refused.value.response.headers["x-should-retry"] == "false"
            assert len(await ledger(stack.http, stack.simulators["support"])) == 2  # Dify was never asked


async def test_slack_usage_and_the_budget_note(tmp_path: Path) -> None:
    async with slack_stack(tmp_path) as stack:
        url = await stack.endpoint()
        event = mention("what does this cost")
        assert (await stack.deliver(url, envelope(event))).status_code == 200
        await stack.fake.wait_for(lambda: stack.fake.texts("C1", event["ts"]) == ["You said: what does this cost"])
        report = await recorded(stack.client, stack.gateway, 1, by="user")
        assert [(r["user"], r["answers"]) for r in report["rows"]] == [("slack:T1:U1", 1)]
        assert report["total"]["total_tokens"] == tokens(await ledger(stack.client, stack.simulator))

        await set_budget(stack.client, stack.gateway, scope="workspace", tokens=1)
        again = mention("and now")
        assert (await stack.deliver(url, envelope(again))).status_code == 200
        await stack.fake.wait_for(lambda: any(NOTE in t for t in stack.fake.texts("C1", again["ts"])))
        assert len(await ledger(stack.client, stack.simulator)) == 1


async def test_discord_usage_and_the_budget_note(tmp_path: Path) -> None:
    async with discord_stack(tmp_path) as stack:
        token, _ = await stack.ask("what does this cost")
        await stack.answered(token, "You said: what does this cost")
        report = await recorded(stack.client, stack.url.split("/e/")[0], 1, by="endpoint")
        assert [(r["endpoint"], r["answers"]) for r in report["rows"]] == [(stack.endpoint_id, 1)]
        assert report["total"]["total_tokens"] == tokens(await ledger(stack.client, stack.simulator))

        await set_budget(stack.client, stack.url.split("/e/")[0], scope="endpoint", target=stack.endpoint_id, tokens=1)
        token, _ = await stack.ask("and now")
        await stack.fake.wait_for(lambda: any(NOTE in m for m in stack.fake.visible(token)))


class SpentApps(FakeApps):
    """The bot's apps when the budget is spent: the bridge refuses before any answer starts."""

    def stream(self, query: str, **kwargs: Any) -> Any:
        self.calls.append({"query": query, **kwargs})
        raise BudgetExceeded(
            "the monthly budget is spent", budget="bud_1", scope="workspace", period="2026-12", resets_at=0
        )


async def test_the_bot_shows_the_budget_note() -> None:
    clock = VirtualClock()
    screen = Screen()
    ctx = FakeContext(SpentApps(clock), settings())
    thread = make_channel(screen, discord.Thread, channel_id=500, owner_id=ME)
    answer: Answer | None = await responder_for(ctx).respond(make_message("go", thread), Trigger.THREAD, ME)
    assert answer is None
    [shown] = screen.contents()
    assert NOTE in shown
