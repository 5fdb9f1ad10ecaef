"""The `lark` plugin under test without a gateway: a `FakeContext` whose HTTP goes to a `FakeLark`
(in process, through httpx's ASGI transport), events encrypted and signed as Lark sends them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from endpoints.lark import plugin
from endpoints.lark.settings import LarkSettings
from gateway.plugin import Response
from gateway.simulator.config import SimulatorConfig
from gateway.testing import (
    FakeContext,
    FakeLark,
    RecordedJob,
    RunningSimulator,
    lark_event,
    lark_message_event,
    running_simulator,
)

ENCRYPT_KEY = "kxOdHvf1fgZ3mFq1xvMu2dQ5Ki3Eb0aS"
TOKEN = "v3rificationT0ken"
BOT = "ou_bot"
MENTION_BOT = ("@_user_1", BOT, "Dify")


@dataclass
class LarkBench:
    ctx: FakeContext[LarkSettings]
    fake: FakeLark

    async def deliver(self, event: dict[str, Any]) -> Response:
        signed = lark_event(ENCRYPT_KEY, event, timestamp=self.ctx.clock.time())
        return await self.ctx.dispatch(signed.request("/"))

    async def ask(self, text: str, **fields: Any) -> tuple[dict[str, Any], list[RecordedJob]]:
        """Deliver a message and run the jobs it queued; (the event, the runs)."""
        event = lark_message_event(text, token=TOKEN, **fields)
        response = await self.deliver(event)
        assert response.status == 200, response.body
        return event, await self.ctx.jobs.run_all()

    def replies(self, event: dict[str, Any]) -> list[str]:
        return self.fake.texts(event["event"]["message"]["message_id"])


def settings(**changes: Any) -> dict[str, Any]:
    return {
        "app_id": "cli_test123",
        "app_secret": "app-secret",
        "encrypt_key": ENCRYPT_KEY,
        "verification_token": TOKEN,
        "api_base_url": "http://lark.test/open-apis",
        "edit_interval": 0.5,
        **changes,
    }


@contextlib.contextmanager
def streaming(answer: str, tokens_per_second: float = 200) -> Iterator[dict[str, RunningSimulator]]:
    """The app on a real simulator server: its answer streams in real time (the in-process one's
    ASGI transport hands over whole responses), while the plugin paces itself on virtual time."""
    config = SimulatorConfig(answer=answer, first_token_latency=0.05, tokens_per_second=tokens_per_second)
    with running_simulator(config) as simulator:
        yield {"app": simulator}


@pytest.fixture
def fake() -> FakeLark:
    fake = FakeLark(bot_open_id=BOT)
    fake.base = "http://lark.test"
    return fake


@pytest.fixture
async def http(fake: FakeLark) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app())) as client:
        yield client


@pytest.fixture
async def bench(fake: FakeLark, http: httpx.AsyncClient) -> AsyncIterator[LarkBench]:
    async with FakeContext(plugin, settings(), http=http) as ctx:
        yield LarkBench(ctx, fake)
